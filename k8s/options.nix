# Options every component module reads. Defaults are the common (dev-sized) values;
# env/dev.nix and env/prod.nix set only what differs between environments.
{ lib, ... }:
let
  inherit (lib) mkOption types;

  resourcesType = types.submodule {
    options = {
      cpuRequest = mkOption { type = types.str; description = "requests.cpu (also the HPA utilisation base)"; };
      cpuLimit = mkOption { type = types.str; description = "limits.cpu (runaway guard, far above normal use)"; };
      memoryRequest = mkOption { type = types.str; description = "requests.memory"; };
      memoryLimit = mkOption { type = types.str; description = "limits.memory"; };
    };
  };

  appOptions = defaults: {
    minReplicas = mkOption { type = types.ints.positive; default = 1; };
    maxReplicas = mkOption { type = types.ints.positive; default = 2; };
    cpuTargetPercent = mkOption { type = types.ints.between 10 100; default = 70; };
    resources = mkOption { type = resourcesType; default = defaults; };
  };

  # Sizing of the Rust binary, from the lead's measurements: a few MB RSS idle,
  # 10–30 MB under load. request = upper end of the measured working set (32Mi),
  # limit = 2x that so a burst of buffered bodies cannot OOM-kill a healthy pod.
  appResources = {
    cpuRequest = "50m";
    cpuLimit = "1";
    memoryRequest = "32Mi";
    memoryLimit = "64Mi";
  };
in
{
  options.usersPlatform = {
    env = mkOption {
      type = types.enum [ "dev" "prod" ];
      description = "Environment name; also the namespace suffix.";
    };

    namespace = mkOption {
      type = types.str;
      description = "Namespace every object lives in (users-platform-<env>).";
    };

    kubernetesVersion = mkOption {
      type = types.str;
      default = "1.31";
      description = "Target Kubernetes minor version (schemas, Pod Security version pin).";
    };

    images = mkOption {
      type = types.attrsOf types.str;
      description = ''
        Full image references for api-gateway, user-service and redis: `name:tag` (the flake's
        packages.manifests-<env>, kind) or `name:tag@sha256:<digest>` (what the deploy job renders
        from the digests the images job pushed, and the golden renders' placeholders).
      '';
    };

    imagePullPolicy = mkOption {
      type = types.enum [ "Always" "IfNotPresent" ];
      default = "IfNotPresent";
      description = ''
        IfNotPresent: deployed references carry a digest, so a cached image is the right image and
        a registry outage does not stop a pod from restarting on a node that has it.
      '';
    };

    imagePullSecrets = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ghcr-pull" ];
      description = ''
        Names of docker-registry Secrets (in the namespace) set as imagePullSecrets on every
        ServiceAccount. Needed while the GHCR packages are private (the default for new packages);
        empty once they are public. See README, "CI/CD".
      '';
    };

    ingress = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "An Ingress for the api-gateway: the clients' entry point (and the availability SLI).";
      };
      className = mkOption {
        type = types.str;
        default = "nginx";
        description = "spec.ingressClassName. The SLI rules read ingress-nginx metrics.";
      };
      host = mkOption {
        type = types.str;
        description = "Public host name of the API.";
      };
      path = mkOption {
        type = types.str;
        default = "/api";
        description = "Path prefix routed to the gateway; only the API, never /health or /metrics.";
      };
      annotations = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Extra annotations on the Ingress (controller tuning).";
      };
      tls = {
        enable = mkOption { type = types.bool; default = false; description = "Terminate TLS at the ingress."; };
        secretName = mkOption {
          type = types.str;
          default = "api-gateway-tls";
          description = "Secret holding the certificate: issued by cert-manager when clusterIssuer is set, otherwise created by you.";
        };
        clusterIssuer = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "cert-manager ClusterIssuer (annotation cert-manager.io/cluster-issuer); null = bring your own Secret.";
        };
      };
      controller = {
        namespace = mkOption {
          type = types.str;
          default = "ingress-nginx";
          description = "Namespace of the ingress controller: the only one (besides monitoring) the gateway NetworkPolicy admits.";
        };
        podLabels = mkOption {
          type = types.attrsOf types.str;
          default = { "app.kubernetes.io/name" = "ingress-nginx"; };
          description = "Labels of the controller pods (ingress-nginx chart default).";
        };
      };
    };

    logLevel = mkOption { type = types.str; default = "info"; };
    seedSampleUsers = mkOption { type = types.bool; default = false; };
    logFormat = mkOption { type = types.enum [ "json" "pretty" ]; default = "json"; };

    ports = mkOption {
      type = types.attrsOf types.port;
      default = { api-gateway = 3000; user-service = 3001; redis = 6379; };
      description = "The one definition of every listen port (container port = Service port = NetworkPolicy port).";
    };

    # Shutdown timing: one definition, everything else is derived from it.
    shutdown = {
      preStopSeconds = mkOption {
        type = types.ints.positive;
        default = 5;
        description = "preStop sleep: time for endpoint removal to reach every kube-proxy/ingress before SIGTERM.";
      };
      drainSeconds = mkOption {
        type = types.ints.unsigned;
        default = 5;
        description = "SHUTDOWN_DRAIN_SECONDS: readiness 503 but still serving after SIGTERM.";
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 20;
        description = "SHUTDOWN_TIMEOUT_SECONDS: bound on draining in-flight requests.";
      };
      marginSeconds = mkOption {
        type = types.ints.positive;
        default = 5;
        description = "Safety margin before the kubelet sends SIGKILL.";
      };
    };

    apps = {
      api-gateway = appOptions appResources;
      user-service = appOptions appResources;
    };

    spread = mkOption {
      type = types.bool;
      default = false;
      description = "Topology spread over zones and nodes plus soft pod anti-affinity.";
    };

    redis = {
      persistence = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = "PersistentVolumeClaim (volumeClaimTemplates) instead of an emptyDir for /data.";
        };
        size = mkOption { type = types.str; default = "5Gi"; };
        storageClassName = mkOption { type = types.nullOr types.str; default = null; };
      };
      resources = mkOption {
        type = resourcesType;
        default = {
          cpuRequest = "50m";
          cpuLimit = "1";
          memoryRequest = "128Mi";
          memoryLimit = "128Mi";
        };
      };
      maxmemoryMb = mkOption {
        type = types.ints.positive;
        default = 64;
        description = "Redis maxmemory; at most half of the memory limit (AOF rewrite forks, copy-on-write).";
      };
    };

    monitoring = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = "ServiceMonitors, PrometheusRule and the Grafana dashboard ConfigMap (needs the Prometheus Operator CRDs).";
      };
      namespace = mkOption {
        type = types.str;
        default = "monitoring";
        description = "Namespace of Prometheus: the NetworkPolicies admit its pods to the metrics port.";
      };
      prometheusPodLabels = mkOption {
        type = types.attrsOf types.str;
        default = { "app.kubernetes.io/name" = "prometheus"; };
        description = "Labels of the Prometheus pods (Prometheus Operator sets app.kubernetes.io/name=prometheus).";
      };
      selectionLabels = mkOption {
        type = types.attrsOf types.str;
        default = { release = "kube-prometheus-stack"; };
        description = ''
          Labels on every ServiceMonitor and PrometheusRule so the Prometheus resource selects them
          (kube-prometheus-stack selects `release: <helm release name>` unless its
          serviceMonitorSelectorNilUsesHelmValues / ruleSelectorNilUsesHelmValues are false).
          Match another install: `kubectl get prometheus -A -o yaml` and copy its
          serviceMonitorSelector / ruleSelector matchLabels here.
        '';
      };
      ingressNamespaceLabel = mkOption {
        type = types.str;
        default = "exported_namespace";
        description = ''
          Label carrying the Ingress' namespace on ingress-nginx metrics as Prometheus stores them:
          `exported_namespace` when the controller's ServiceMonitor does not honor labels (the
          chart default; the target's own `namespace` wins), `namespace` with honorLabels: true.
        '';
      };
    };

    externalSecret = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = "Create the redis-auth Secret through an ExternalSecret (external-secrets.io).";
      };
      storeKind = mkOption { type = types.enum [ "SecretStore" "ClusterSecretStore" ]; default = "ClusterSecretStore"; };
      storeName = mkOption { type = types.str; default = "cloud-secret-store"; };
      remoteKey = mkOption { type = types.str; default = "users-platform/redis"; };
      refreshInterval = mkOption { type = types.str; default = "1h"; };
    };
  };
}
