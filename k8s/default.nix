# Kubernetes manifests of users-platform, as kubenix modules evaluated with nixpkgs `lib` only.
#
#   import ./k8s { lib; kubenix; env = "dev" | "prod"; images = { api-gateway; user-service; redis; }; }
#
# returns the list of Kubernetes objects (plain attrsets) in a deterministic order.
# Nothing is built: kubenix's `pkgs`-dependent options (result, resultYAML, docker copy
# scripts) are never forced, and `pkgs` is bound to a throw to prove it.
# Target Kubernetes version: 1.31.
{ lib, kubenix, env, images }:
let
  envName = lib.throwIfNot (builtins.elem env [ "dev" "prod" ]) "k8s: env must be \"dev\" or \"prod\", got \"${toString env}\"" env;

  evaluated = lib.evalModules {
    modules = [
      (kubenix + "/modules/k8s.nix")
      (kubenix + "/modules/docker.nix")
      {
        _module.args.pkgs = throw "k8s/default.nix: the manifests must evaluate without pkgs (nothing may be built)";
        kubenix.project = "users-platform";
        kubernetes.version = "1.31";
        usersPlatform = {
          env = envName;
          namespace = "users-platform-${envName}";
          inherit images;
        };
      }
      ./options.nix
      ./lib/platform.nix
      ./lib/crds.nix
      ./namespace.nix
      ./api-gateway.nix
      ./user-service.nix
      ./redis.nix
      ./redis-backup.nix
      ./ingress.nix
      ./network-policies.nix
      ./monitoring.nix
      ./secrets.nix
      (./env + "/${envName}.nix")
    ];
  };

  # Apply order first (namespace, identities, config, workloads, policies, CRs), then by name.
  kindOrder = [
    "Namespace"
    "ServiceAccount"
    "ExternalSecret"
    "ConfigMap"
    "PersistentVolumeClaim"
    "Service"
    "Deployment"
    "StatefulSet"
    "CronJob"
    "HorizontalPodAutoscaler"
    "PodDisruptionBudget"
    "Ingress"
    "NetworkPolicy"
    "ServiceMonitor"
    "PrometheusRule"
  ];
  ranks = builtins.listToAttrs (lib.imap0 (i: k: lib.nameValuePair k i) kindOrder);
  rank = kind: ranks.${kind} or (builtins.length kindOrder);
  cmp = a: b: if a < b then -1 else if a > b then 1 else 0;
  key = o: [ (rank o.kind) o.kind (o.metadata.namespace or "") o.metadata.name ];
  lessThan = a: b: lib.lists.compareLists cmp (key a) (key b) < 0;

  # kubenix stamps every object with kubenix/project-name and kubenix/k8s-version annotations;
  # they carry no information for the cluster and only add noise to every diff.
  dropKubenixAnnotations = o:
    let
      kept = lib.filterAttrs (k: _: !lib.hasPrefix "kubenix/" k) (o.metadata.annotations or { });
      metadata = builtins.removeAttrs o.metadata [ "annotations" ] // lib.optionalAttrs (kept != { }) { annotations = kept; };
    in
    o // { inherit metadata; };

  objects = map dropKubenixAnnotations evaluated.config.kubernetes.objects;
in
builtins.sort lessThan objects
