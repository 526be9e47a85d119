# Shared helpers for the component modules, exposed to them as the `platform` module argument.
{ lib, config, ... }:
let
  cfg = config.usersPlatform;
  labelLib = import ./labels.nix { inherit (cfg) namespace; };

  # "registry/name:tag" or "registry/name:tag@sha256:<64 hex>" -> { name; tag; } for kubenix's
  # docker module, whose path is "<name>:<tag>": a digest rides along in `tag`.
  splitImage = ref:
    let m = builtins.match "([^@]+):([^:/@]+)(@sha256:[0-9a-f]{64})?" ref;
    in if m == null
    then throw "image reference '${ref}' is not name:tag or name:tag@sha256:<digest>"
    else {
      name = builtins.elemAt m 0;
      tag = builtins.elemAt m 1 + (if builtins.elemAt m 2 == null then "" else builtins.elemAt m 2);
    };
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

    # Content-named ConfigMaps: the name carries a hash of the data and the object is immutable.
    # A config change is a new ConfigMap and a new pod template (the pods roll), and
    # `kubectl rollout undo` brings back the old template *with* the old ConfigMap name, so the
    # config rolls back with the workload. Old ConfigMaps stay until scripts/ci/deploy.sh prunes
    # those no retained ReplicaSet/ControllerRevision references.
    contentName = base: data: "${base}-${builtins.substring 0 10 (builtins.hashString "sha256" (builtins.toJSON data))}";
    contentNamedLabel = "users-platform.dev/content-named";
    configMap = { meta, base, data }: {
      metadata = meta // {
        name = contentName base data;
        labels = meta.labels // { ${contentNamedLabel} = "true"; };
      };
      immutable = true;
      inherit data;
    };

    # Shutdown budget, derived from one definition (docs/architecture.md, shutdown):
    # grace >= preStop + drain + timeout + margin, and preStop < grace.
    shutdown = cfg.shutdown // {
      graceSeconds = with cfg.shutdown; preStopSeconds + drainSeconds + timeoutSeconds + marginSeconds;
    };

    # Redis credentials: one Secret, two keys, one password. `password` is mounted into the apps
    # (REDIS_PASSWORD_FILE, and REDIS_SENTINEL_PASSWORD_FILE: the Sentinels use the same one)
    # and into the Redis pods' init container, which writes it into sentinel.conf (requirepass,
    # sentinel-pass, auth-pass); `auth.conf` ("requirepass <pw>" and "masterauth <pw>", so a
    # replica can authenticate to its primary) is included by redis.conf.
    redisSecret = {
      name = "redis-auth";
      passwordKey = "password";
      confKey = "auth.conf";
      appMountPath = "/var/run/secrets/redis";
      redisMountPath = "/var/run/secrets/redis-auth";
    };

    # Replicated Redis (redis.replicas > 1): a Sentinel per pod, the user-service finds the
    # primary through them under this name, at these stable per-pod names (headless Service).
    redisReplicated = cfg.redis.replicas > 1;
    redisMasterName = "users";
    redisSentinels = lib.concatMapStringsSep ","
      (n: "redis-${toString n}.redis-headless:${toString cfg.ports.sentinel}")
      (lib.range 0 (cfg.redis.replicas - 1));

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
    # API token and the restricted pod securityContext. Config changes roll the pods because the
    # template references a content-named ConfigMap (configMap above). Service links are off: they
    # would inject e.g. REDIS_PORT=tcp://… and USER_SERVICE_PORT=tcp://…, which collide with the
    # binary's own configuration variables.
    podTemplate = { meta, spec }: {
      metadata = {
        inherit (meta) labels;
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

    # ServiceAccount of a workload: no API token; the registry pull Secrets when configured.
    serviceAccount = meta: {
      metadata = meta;
      automountServiceAccountToken = false;
    } // lib.optionalAttrs (cfg.imagePullSecrets != [ ]) {
      imagePullSecrets = map (name: { inherit name; }) cfg.imagePullSecrets;
    };

    # The skips every workload running one of our images needs.
    imageSkips = lib.optional (cfg.imagePullPolicy != "Always") {
      id = "CKV_K8S_15";
      reason = "deployed images are pinned by digest (name:tag@sha256), so a cached image is the right one; kind loads dev images";
    };
  };
}
