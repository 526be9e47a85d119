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
      default = { api-gateway = 3000; user-service = 3001; redis = 6379; sentinel = 26379; };
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
      replicas = mkOption {
        type = types.addCheck types.ints.positive (n: n == 1 || (n >= 3 && lib.mod n 2 == 1));
        default = 1;
        description = ''
          Redis pods. 1: one node, no Sentinel (dev). 3 or another odd number: a primary and
          replicas, each pod with a Sentinel; the user-service finds the primary through them.
        '';
      };
      sentinel = {
        quorum = mkOption {
          type = types.ints.positive;
          default = 2;
          description = "Sentinels that must agree the primary is down (failover also needs a majority of all Sentinels).";
        };
        downAfterMilliseconds = mkOption {
          type = types.ints.positive;
          default = 5000;
          description = "A primary silent this long is down for a Sentinel (longer than a node's GC or I/O stall, short enough to bound the write outage).";
        };
        failoverTimeoutMilliseconds = mkOption {
          type = types.ints.positive;
          default = 10000;
          description = "Sentinel's failover-timeout. After an election that chose no leader (a split vote) the next waits twice this, with every write refused meanwhile: keep it small (docs/reliability.md, split vote).";
        };
        resources = mkOption {
          type = resourcesType;
          default = { cpuRequest = "10m"; cpuLimit = "200m"; memoryRequest = "16Mi"; memoryLimit = "32Mi"; };
        };
      };
      minReplicasToWrite = mkOption {
        type = types.ints.unsigned;
        default = 1;
        description = ''
          min-replicas-to-write with replicas > 1: a primary that sees fewer replicas (e.g. one
          cut off from the others by a partition) refuses writes, which bounds what a split brain
          can lose to min-replicas-max-lag seconds.
        '';
      };
      minReplicasMaxLagSeconds = mkOption { type = types.ints.positive; default = 10; };
      backup = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = "A CronJob that snapshots Redis (redis-cli --rdb), verifies it (redis-check-rdb) and keeps `keep` copies on a PVC.";
        };
        schedule = mkOption { type = types.str; default = "17 3 * * *"; description = "Cron schedule, UTC."; };
        keep = mkOption { type = types.ints.between 1 1000; default = 7; description = "Snapshots kept; older ones are deleted."; };
        size = mkOption { type = types.str; default = "20Gi"; description = "Backup PVC size: keep x the RDB size, with room."; };
        storageClassName = mkOption { type = types.nullOr types.str; default = null; };
        offsite = mkOption {
          type = types.nullOr (types.attrsOf types.anything);
          default = null;
          example = lib.literalExpression ''{ image = "rclone/rclone:1.68@sha256:..."; args = [ "copy" "/backups" "remote:users-backups" ]; }'';
          description = ''
            The off-cluster hook: a container (name, image, command/args, env, ...) that runs after
            a snapshot was verified and filed, with the backup volume read-only at /backups, e.g.
            rclone to object storage. null: snapshots stay on the PVC; docs/runbook.md shows how to
            copy them off by hand.
          '';
        };
      };
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
