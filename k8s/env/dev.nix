# dev: only what differs from the defaults in ../options.nix.
{
  usersPlatform = {
    logLevel = "debug";
    seedSampleUsers = true;
    ingress.host = "api.dev.users-platform.example.com";
    # Users survive a Redis pod's deletion in dev too (kind and most dev clusters have a
    # default StorageClass); CI's e2e job deletes redis-0 and expects every user back.
    redis.persistence = { enable = true; size = "1Gi"; };
  };
}
