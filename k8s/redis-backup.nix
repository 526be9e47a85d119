# Backups of Redis (usersPlatform.redis.backup): a CronJob whose pod runs, in order and with
# no shell anywhere (a Job stops at the first step that fails):
#   1. snapshot (redis image): `redis-cli -h redis --rdb /backups/incoming.rdb`: a full-sync
#      RDB stream from any ready node behind the `redis` Service (a synced replica or the
#      primary; both hold the same consistent dataset), written to the backup volume;
#   2. verify (redis image): `redis-check-rdb /backups/incoming.rdb`, non-zero on any damage;
#   3. file (user-service image): `users-platform redis-backup` renames it to
#      users-<UTC time>.rdb and deletes all but the newest `keep`;
#   4. optional off-cluster hook (redis.backup.offsite): any container, e.g. rclone, run after
#      the file step with the volume read-only at /backups.
# Restore: docs/runbook.md, "Restore from backup".
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
  rc = cfg.redis;
  bk = rc.backup;
  name = "redis-backup";
  meta = platform.meta { inherit name; component = "backup"; };
  secret = platform.redisSecret;
  incoming = "/backups/incoming.rdb";

  step = attrs: {
    imagePullPolicy = cfg.imagePullPolicy;
    securityContext = platform.containerSecurityContext;
    volumeMounts = [{ name = "backups"; mountPath = "/backups"; }];
  } // attrs;

  snapshot = step {
    name = "snapshot";
    image = platform.image "redis";
    command = [ "/bin/redis-cli" ];
    args = [ "-h" "redis" "-p" (toString cfg.ports.redis) "--rdb" incoming ];
    # redis-cli reads the password from here, or from its command line; never a file.
    env = [{ name = "REDISCLI_AUTH"; valueFrom.secretKeyRef = { name = secret.name; key = secret.passwordKey; }; }];
    resources = platform.resources { cpuRequest = "50m"; cpuLimit = "1"; memoryRequest = "32Mi"; memoryLimit = "64Mi"; };
  };

  verify = step {
    name = "verify";
    image = platform.image "redis";
    command = [ "/bin/redis-check-rdb" ];
    args = [ incoming ];
    # It decodes every key: give it what the server itself may use.
    resources = platform.resources rc.resources;
  };

  file = step {
    name = "file";
    image = platform.image "user-service";
    args = [ "redis-backup" ];
    env = [
      { name = "BACKUP_DIR"; value = "/backups"; }
      { name = "BACKUP_INCOMING"; value = incoming; }
      { name = "BACKUP_KEEP"; value = toString bk.keep; }
      { name = "LOG_FORMAT"; value = cfg.logFormat; }
    ];
    resources = platform.resources { cpuRequest = "10m"; cpuLimit = "200m"; memoryRequest = "16Mi"; memoryLimit = "32Mi"; };
  };

  offsite = lib.optional (bk.offsite != null) ({
    name = "offsite";
    imagePullPolicy = cfg.imagePullPolicy;
    securityContext = platform.containerSecurityContext;
    resources = platform.resources { cpuRequest = "50m"; cpuLimit = "1"; memoryRequest = "64Mi"; memoryLimit = "256Mi"; };
  } // bk.offsite // {
    volumeMounts = [{ name = "backups"; mountPath = "/backups"; readOnly = true; }] ++ (bk.offsite.volumeMounts or [ ]);
  });

  # Every step but the last is an init container: they run one after the other.
  steps = [ snapshot verify file ] ++ offsite;
in
{
  config = lib.mkIf bk.enable {
    kubernetes.resources = {
      serviceAccounts.${name} = platform.serviceAccount meta;

      persistentVolumeClaims.redis-backups = {
        metadata = platform.meta { name = "redis-backups"; labelName = name; component = "backup"; };
        spec = {
          accessModes = [ "ReadWriteOnce" ];
          resources.requests.storage = bk.size;
        } // lib.optionalAttrs (bk.storageClassName != null) { inherit (bk) storageClassName; };
      };

      cronJobs.${name} = {
        metadata = meta // {
          annotations = platform.checkovSkips (platform.imageSkips ++ [{
            id = "CKV_K8S_35";
            reason = "redis-cli reads its password only from REDISCLI_AUTH or its arguments; the shell-less image cannot read a file into it";
          }]);
        };
        spec = {
          schedule = bk.schedule;
          timeZone = "Etc/UTC";
          # One snapshot at a time; a missed run is not worth two at once.
          concurrencyPolicy = "Forbid";
          startingDeadlineSeconds = 3600;
          successfulJobsHistoryLimit = 3;
          failedJobsHistoryLimit = 3;
          jobTemplate = {
            metadata.labels = meta.labels;
            spec = {
              backoffLimit = 2;
              activeDeadlineSeconds = 3600;
              template = platform.podTemplate {
                inherit meta;
                spec = {
                  restartPolicy = "Never";
                  initContainers = lib.init steps;
                  containers = [ (lib.last steps) ];
                  volumes = [{ name = "backups"; persistentVolumeClaim.claimName = "redis-backups"; }];
                };
              };
            };
          };
        };
      };
    };
  };
}
