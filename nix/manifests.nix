# Kubernetes manifests rendered from k8s/ (kubenix, evaluated with nixpkgs lib only).
#
#  - dev / prod: the YAML of each environment with the real image references of
#    this commit (`<image name>:<content-hash tag>`). Evaluating the tags needs no
#    build, and the manifests do not depend on the image builds.
#  - deploy.dev: the same dev objects split into apply stages, for deploy-dev.
#
# The golden files k8s/rendered/ (placeholder images) are checked against a fresh
# render by scripts/check-k8s, which the flake's `k8s` check runs.
{ lib, pkgs, python, kubenix, images }:
let
  names = [ "api-gateway" "user-service" "redis" ];

  # "ghcr.io/users-platform/api-gateway:<index tag>": the multi-platform image
  # push-images publishes, whose tag is known at evaluation time (images.nix), so
  # rendering manifests never builds an image.
  imageRefs = lib.genAttrs names (name: "${images.${name}.imageName}:${images.indexTags.${name}}");

  # This machine's images under their own tags: what deploy-dev loads into kind,
  # without a registry. The string context is dropped for the same reason.
  nativeRefs = lib.genAttrs names (name:
    "${images.${name}.imageName}:${builtins.unsafeDiscardStringContext images.${name}.imageTag}");

  objectsFor = env: refs: import ../k8s {
    inherit lib env;
    kubenix = kubenix.outPath;
    images = refs;
  };

  tools = ../k8s/tools;

  toYAML = name: header: objects:
    pkgs.runCommand name
      {
        nativeBuildInputs = [ python ];
        json = pkgs.writeText "${name}.json" (builtins.toJSON objects);
        inherit header;
      } ''
      python3 ${tools}/yamlify.py --header "$header" < "$json" > "$out"
    '';

  render = env:
    toYAML "users-platform-manifests-${env}.yaml"
      "Rendered by the flake (packages.manifests-${env}) with the image tags of this commit. Do not edit."
      (objectsFor env imageRefs);

  # Objects of kinds that only exist with an operator's CRDs installed
  # (ServiceMonitor, PrometheusRule, ExternalSecret, ...): deploy-dev applies them
  # only when the cluster knows the API group.
  builtinGroups = [ "" "apps" "autoscaling" "batch" "policy" "networking.k8s.io" "rbac.authorization.k8s.io" "scheduling.k8s.io" "storage.k8s.io" "coordination.k8s.io" "discovery.k8s.io" ];
  groupOf = object:
    let parts = lib.splitString "/" object.apiVersion;
    in if builtins.length parts == 1 then "" else builtins.head parts;
  isBuiltin = object: builtins.elem (groupOf object) builtinGroups;
  asList = items: builtins.toJSON { apiVersion = "v1"; kind = "List"; inherit items; };

  # deploy-dev's view of the dev manifests: JSON `List`s in apply order, plus what
  # it waits for and where the gateway is. Same objects as packages.manifests-dev.
  deployDev =
    let
      objects = objectsFor "dev" nativeRefs;
      namespaces = builtins.filter (o: o.kind == "Namespace") objects;
      rest = builtins.filter (o: o.kind != "Namespace") objects;
      core = builtins.filter isBuiltin rest;
      extra = builtins.filter (o: !isBuiltin o) rest;
      workloads = builtins.filter (o: builtins.elem o.kind [ "Deployment" "StatefulSet" ]) objects;
      gatewayService = lib.findFirst (o: o.kind == "Service" && o.metadata.name == "api-gateway") null objects;
      namespace =
        if namespaces != [ ] then (builtins.head namespaces).metadata.name
        else (builtins.head workloads).metadata.namespace or "default";
    in
    pkgs.runCommand "users-platform-deploy-dev"
      {
        passAsFile = [ "namespaces" "core" "extra" "rollouts" ];
        namespaces = asList namespaces;
        core = asList core;
        extra = asList extra;
        rollouts = lib.concatMapStrings
          (o: "${o.metadata.namespace or namespace} ${lib.toLower o.kind}/${o.metadata.name}\n")
          workloads;
      } ''
      mkdir -p "$out"
      cp "$namespacesPath" "$out/00-namespaces.json"
      cp "$corePath" "$out/10-core.json"
      cp "$extraPath" "$out/20-extra.json"
      cp "$rolloutsPath" "$out/rollouts"
      echo ${lib.escapeShellArg namespace} > "$out/namespace"
      echo ${lib.escapeShellArg (if gatewayService == null then "api-gateway 3000" else
        "${gatewayService.metadata.name} ${toString (builtins.head gatewayService.spec.ports).port}")} > "$out/gateway"
    '';

in
{
  inherit imageRefs;
  dev = render "dev";
  prod = render "prod";
  deploy.dev = deployDev;
}
