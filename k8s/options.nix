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
      description = "Full image references (name:tag) for api-gateway, user-service and redis.";
    };

    imagePullPolicy = mkOption {
      type = types.enum [ "Always" "IfNotPresent" ];
      default = "Always";
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

    monitoring.enable = mkOption {
      type = types.bool;
      default = false;
      description = "ServiceMonitors, PrometheusRule and the Grafana dashboard ConfigMap (needs the Prometheus Operator CRDs).";
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
