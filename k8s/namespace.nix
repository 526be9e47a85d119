# The environment's namespace, enforcing the Pod Security "restricted" profile.
{ config, platform, ... }:
let
  cfg = config.usersPlatform;
  psVersion = "v${cfg.kubernetesVersion}";
in
{
  kubernetes.resources.namespaces.${cfg.namespace}.metadata = {
    name = cfg.namespace;
    labels = platform.labels { name = "users-platform"; component = "namespace"; } // {
      "pod-security.kubernetes.io/enforce" = "restricted";
      "pod-security.kubernetes.io/enforce-version" = psVersion;
      "pod-security.kubernetes.io/audit" = "restricted";
      "pod-security.kubernetes.io/audit-version" = psVersion;
      "pod-security.kubernetes.io/warn" = "restricted";
      "pod-security.kubernetes.io/warn-version" = psVersion;
    };
  };
}
