# Shared helpers for the component modules, exposed to them as the `platform` module argument.
{ lib, config, ... }:
let
  cfg = config.usersPlatform;
  labelLib = import ./labels.nix { inherit (cfg) namespace; };

  # "registry/name:tag" -> { name; tag; } for kubenix's docker module.
  splitImage = ref:
    let m = builtins.match "(.+):([^:/]+)" ref;
    in if m == null
    then throw "image reference '${ref}' has no tag (expected name:tag)"
    else { name = builtins.elemAt m 0; tag = builtins.elemAt m 1; };
in
{
  # Images go through kubenix's docker module: docker.images.<name>.path is what pods use.
  config.docker.images = lib.mapAttrs (_: splitImage) cfg.images;

  config._module.args.platform = rec {
    inherit (labelLib) selector labels;

    meta = { name, component, labelName ? name, annotations ? { } }: {
      inherit name;
      inherit (cfg) namespace;
      labels = labels { name = labelName; inherit component; };
    } // lib.optionalAttrs (annotations != { }) { inherit annotations; };

    image = name: config.docker.images.${name}.path;

    # Annotation that changes whenever the given (non-secret) config changes, so pods roll.
    checksum = data: builtins.hashString "sha256" (builtins.toJSON data);

    # Shutdown budget, derived from one definition (DESIGN §7):
    # grace >= preStop + drain + timeout + margin, and preStop < grace.
    shutdown = cfg.shutdown // {
      graceSeconds = with cfg.shutdown; preStopSeconds + drainSeconds + timeoutSeconds + marginSeconds;
    };

    # Redis credentials: one Secret, two keys. `password` is mounted into the apps
    # (REDIS_PASSWORD_FILE); `auth.conf` ("requirepass <pw>") is included by redis.conf.
    redisSecret = {
      name = "redis-auth";
      passwordKey = "password";
      confKey = "auth.conf";
      appMountPath = "/var/run/secrets/redis";
      redisMountPath = "/var/run/secrets/redis-auth";
    };

    runAsId = 10001;

    podSecurityContext = {
      runAsNonRoot = true;
      runAsUser = runAsId;
      runAsGroup = runAsId;
      fsGroup = runAsId;
      fsGroupChangePolicy = "OnRootMismatch";
      seccompProfile.type = "RuntimeDefault";
    };

    containerSecurityContext = {
      runAsNonRoot = true;
      runAsUser = runAsId;
      runAsGroup = runAsId;
      privileged = false;
      allowPrivilegeEscalation = false;
      readOnlyRootFilesystem = true;
      capabilities.drop = [ "ALL" ];
      seccompProfile.type = "RuntimeDefault";
    };

    # Pod template of every workload: its own ServiceAccount (named like the workload) without an
    # API token, the restricted pod securityContext, and a checksum of the non-secret config so a
    # config change rolls the pods. Service links are off: they would inject e.g.
    # REDIS_PORT=tcp://… and USER_SERVICE_PORT=tcp://…, which collide with the binary's own
    # configuration variables.
    podTemplate = { meta, configData, spec }: {
      metadata = {
        inherit (meta) labels;
        annotations."checksum/config" = checksum configData;
      };
      spec = {
        serviceAccountName = meta.name;
        automountServiceAccountToken = false;
        enableServiceLinks = false;
        securityContext = podSecurityContext;
      } // spec;
    };

    resources = r: {
      requests = { cpu = r.cpuRequest; memory = r.memoryRequest; };
      limits = { cpu = r.cpuLimit; memory = r.memoryLimit; };
    };

    # Prod: spread over zones and nodes, prefer not to co-locate replicas.
    spread = name: lib.optionalAttrs cfg.spread {
      topologySpreadConstraints = map
        (key: {
          maxSkew = 1;
          topologyKey = key;
          whenUnsatisfiable = "ScheduleAnyway";
          labelSelector.matchLabels = selector name;
          matchLabelKeys = [ "pod-template-hash" ];
        }) [ "topology.kubernetes.io/zone" "kubernetes.io/hostname" ];
      affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution = [{
        weight = 100;
        podAffinityTerm = {
          topologyKey = "kubernetes.io/hostname";
          labelSelector.matchLabels = selector name;
        };
      }];
    };

    # Checkov skips live next to the object they concern and always carry a reason.
    checkovSkips = skips: lib.listToAttrs (lib.imap1
      (i: s: lib.nameValuePair "checkov.io/skip${toString i}" "${s.id}=${s.reason}")
      skips);

    # The skips every workload running one of our images needs. Digest pinning is impossible:
    # the tag *is* the Nix content hash of the image.
    imageSkips = [{
      id = "CKV_K8S_43";
      reason = "image tag is the Nix content hash of the image (immutable per build); digests are unknown at evaluation time";
    }] ++ lib.optional (cfg.imagePullPolicy != "Always") {
      id = "CKV_K8S_15";
      reason = "dev images are loaded into kind (kind load), not pulled from a registry";
    };
  };
}
