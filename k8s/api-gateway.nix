# api-gateway: the public HTTP entry point; proxies /api/users* to the user-service.
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
in
{
  kubernetes.resources = import ./lib/http-service.nix { inherit lib cfg platform; } {
    name = "api-gateway";
    component = "gateway";
    config = {
      # The Service name, so the env-host-unknown policy can check it resolves.
      USER_SERVICE_URL = "http://user-service:${toString cfg.ports.user-service}";
      UPSTREAM_TIMEOUT_MS = "2000";
    };
  };
}
