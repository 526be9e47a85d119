# Kubernetes manifests rendered from k8s/ (kubenix, evaluated with nixpkgs lib only).
#
#  - dev / prod: the YAML of each environment with the real image references of
#    this commit (`<image name>:<content-hash tag>`). Evaluating the tags needs no
#    build, and the manifests do not depend on the image builds.
#  - deploy.dev: the same dev objects split into apply stages, for deploy-dev.
#  - drift: a check that k8s/rendered/<env>.yaml (the golden files, rendered by
#    scripts/render-manifests with k8s/images-placeholder.nix) is up to date.
#
# Everything is guarded with builtins.pathExists so the flake evaluates even in a
# tree without k8s/; the affected derivations then fail with a clear message.
{ lib, pkgs, python, kubenix, images }:
let
  have = path: builtins.pathExists path;
  k8sReady = have ../k8s/default.nix && have ../k8s/tools/yamlify.py;

  missing = name: what: pkgs.runCommand name { } ''
    echo "users-platform: ${what} is missing from this tree; cannot build ${name}" >&2
    exit 1
  '';

  # "ghcr.io/users-platform/api-gateway:<hash>". The tag is the hash of the
  # image's configuration derivation, known at evaluation time; its string
  # context is dropped so rendering manifests never builds an image.
  refOf = image: "${image.imageName}:${builtins.unsafeDiscardStringContext image.imageTag}";

  imageRefs = {
    api-gateway = refOf images.api-gateway;
    user-service = refOf images.user-service;
    redis = refOf images.redis;
  };

  # Must be the set scripts/render-manifests uses for k8s/rendered/.
  placeholderRefs =
    if have ../k8s/images-placeholder.nix
    then import ../k8s/images-placeholder.nix
    else {
      api-gateway = "ghcr.io/users-platform/api-gateway:placeholder";
      user-service = "ghcr.io/users-platform/user-service:placeholder";
      redis = "ghcr.io/users-platform/redis:placeholder";
    };

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
    if k8sReady then
      toYAML "users-platform-manifests-${env}.yaml"
        "Rendered by the flake (packages.manifests-${env}) with the image tags of this commit. Do not edit."
        (objectsFor env imageRefs)
    else missing "users-platform-manifests-${env}.yaml" "k8s/default.nix or k8s/tools/yamlify.py";

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
    if !k8sReady then missing "users-platform-deploy-dev" "k8s/default.nix or k8s/tools/yamlify.py" else
    let
      objects = objectsFor "dev" imageRefs;
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

  drift =
    if !(k8sReady && have ../k8s/tools/same_manifests.py && have ../k8s/rendered) then
      pkgs.runCommand "manifest-drift-skipped" { } ''
        echo "k8s/ is not complete in this tree; manifest drift check skipped" > "$out"
      ''
    else
      let
        fresh = env: toYAML "manifests-${env}-placeholder.yaml" "fresh render" (objectsFor env placeholderRefs);
        golden = ../k8s/rendered;
      in
      pkgs.runCommand "manifest-drift" { nativeBuildInputs = [ python ]; } ''
        status=0
        ${lib.concatMapStrings (env: ''
          if ! python3 ${tools}/same_manifests.py "${golden}/${env}.yaml" "${fresh env}"; then
            echo "k8s/rendered/${env}.yaml is out of date: run scripts/render-manifests (or nix run .#render-manifests) and commit it" >&2
            status=1
          fi
        '') [ "dev" "prod" ]}
        [ "$status" -eq 0 ]
        touch "$out"
      '';
in
{
  inherit imageRefs placeholderRefs drift;
  dev = render "dev";
  prod = render "prod";
  deploy.dev = deployDev;
}
