# The redis-auth Secret is never in git.
#  - dev: created at deploy time by `nix run .#deploy-dev` (random password, both keys).
#  - prod: synced by external-secrets.io from the cloud secret store (this ExternalSecret).
# Both keys are rendered from the one remote value, so clients and server never disagree.
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
  es = cfg.externalSecret;
  s = platform.redisSecret;
in
{
  config = lib.mkIf es.enable {
    kubernetes.resources.externalSecrets.${s.name} = {
      metadata = platform.meta { inherit (s) name; labelName = "redis"; component = "database"; };
      spec = {
        inherit (es) refreshInterval;
        secretStoreRef = { kind = es.storeKind; name = es.storeName; };
        target = {
          inherit (s) name;
          creationPolicy = "Owner";
          deletionPolicy = "Retain";
          template = {
            engineVersion = "v2";
            type = "Opaque";
            data = {
              ${s.passwordKey} = "{{ .password }}";
              # masterauth: replicas authenticate to the primary with the same password.
              ${s.confKey} = "requirepass {{ .password }}\nmasterauth {{ .password }}\n";
            };
          };
        };
        data = [{
          secretKey = "password";
          remoteRef = { key = es.remoteKey; property = "password"; };
        }];
      };
    };
  };
}
