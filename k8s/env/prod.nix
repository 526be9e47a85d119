# prod: only what differs from the defaults in ../options.nix.
{
  usersPlatform = {
    spread = true;

    ingress = {
      host = "api.users-platform.example.com";
      tls = {
        enable = true;
        clusterIssuer = "letsencrypt-prod";
      };
    };

    apps = {
      api-gateway = {
        minReplicas = 3;
        maxReplicas = 10;
        resources = { cpuRequest = "100m"; cpuLimit = "1"; memoryRequest = "32Mi"; memoryLimit = "64Mi"; };
      };
      user-service = {
        minReplicas = 3;
        maxReplicas = 10;
        resources = { cpuRequest = "100m"; cpuLimit = "1"; memoryRequest = "32Mi"; memoryLimit = "64Mi"; };
      };
    };

    redis = {
      # A primary and two replicas, a Sentinel in each pod (k8s/redis.nix).
      replicas = 3;
      backup = { enable = true; keep = 7; };
      persistence = { enable = true; size = "10Gi"; };
      # Three times maxmemory: besides the data, a fork's copy-on-write during AOF rewrites and
      # full syncs, and the replica output buffers, none of which maxmemory counts.
      resources = { cpuRequest = "250m"; cpuLimit = "1"; memoryRequest = "768Mi"; memoryLimit = "768Mi"; };
      maxmemoryMb = 256;
    };

    monitoring = {
      enable = true;
      selectionLabels = { release = "kube-prometheus-stack"; };
    };
    externalSecret = {
      enable = true;
      remoteKey = "users-platform/prod/redis";
    };
  };
}
