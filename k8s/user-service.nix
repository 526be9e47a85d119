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
      REDIS_URL = "redis://redis:${toString cfg.ports.redis}/0";
      SEED_SAMPLE_USERS = lib.boolToString cfg.seedSampleUsers;
    };
  };
}
