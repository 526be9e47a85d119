# user-service: the user API backed by Redis.
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
in
{
  kubernetes.resources = import ./lib/http-service.nix { inherit lib cfg platform; } {
    name = "user-service";
    component = "backend";
    redisClient = true;
    config = {
      SEED_SAMPLE_USERS = lib.boolToString cfg.seedSampleUsers;
    } // (if platform.redisReplicated then {
      # The primary is the Sentinels' to name; the service follows their failovers.
      REDIS_SENTINELS = platform.redisSentinels;
      REDIS_MASTER_NAME = platform.redisMasterName;
      REDIS_SENTINEL_PASSWORD_FILE = "${platform.redisSecret.appMountPath}/${platform.redisSecret.passwordKey}";
    } else {
      REDIS_URL = "redis://redis:${toString cfg.ports.redis}/0";
    });
  };
}
