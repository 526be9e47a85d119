# Builds the kubenix resources of one of the two HTTP services of the users-platform binary:
# ServiceAccount, content-named immutable ConfigMap (non-secret config only), Deployment, Service,
# HPA and PDB.
# api-gateway.nix and user-service.nix call this with what is specific to them.
{ lib, cfg, platform }:
{ name
, component
, config        # non-secret settings -> content-named ConfigMap (envFrom); a change rolls the pods
, redisClient ? false # mount the Redis password file
}:
let
  app = cfg.apps.${name};
  port = cfg.ports.${name};
  meta = platform.meta { inherit name component; };
  sd = platform.shutdown;
  secret = platform.redisSecret;

  configData = {
    LOG_LEVEL = cfg.logLevel;
    LOG_FORMAT = cfg.logFormat;
    SHUTDOWN_DRAIN_SECONDS = toString sd.drainSeconds;
    SHUTDOWN_TIMEOUT_SECONDS = toString sd.timeoutSeconds;
  } // config;
  configMap = platform.configMap { inherit meta; base = name; data = configData; };
  configName = configMap.metadata.name;

  httpProbe = path: extra: {
    httpGet = { inherit path; port = "http"; scheme = "HTTP"; };
    timeoutSeconds = 2;
  } // extra;

in
{
  serviceAccounts.${name} = platform.serviceAccount meta;

  configMaps.${configName} = configMap;

  deployments.${name} = {
    metadata = meta // { annotations = platform.checkovSkips platform.imageSkips; };
    spec = {
      # No `replicas`: the HorizontalPodAutoscaler owns the count.
      revisionHistoryLimit = 5;
      selector.matchLabels = platform.selector name;
      strategy = {
        type = "RollingUpdate";
        rollingUpdate = { maxUnavailable = 0; maxSurge = 1; };
      };
      template = platform.podTemplate {
        inherit meta;
        spec = {
          terminationGracePeriodSeconds = sd.graceSeconds;
          containers = [
            ({
              inherit name;
              image = platform.image name;
              imagePullPolicy = cfg.imagePullPolicy;
              ports = [{ name = "http"; containerPort = port; protocol = "TCP"; }];
              env = [{ name = "PORT"; value = toString port; }]
                ++ lib.optional redisClient {
                name = "REDIS_PASSWORD_FILE";
                value = "${secret.appMountPath}/${secret.passwordKey}";
              };
              envFrom = [{ configMapRef.name = configName; }];
              # startup: the process is up (/health/live), generous budget, then hands over to
              # liveness: the process still answers at all (never checks dependencies);
              # readiness: dependencies reachable and not draining (/health/ready).
              startupProbe = httpProbe "/health/live" { periodSeconds = 2; failureThreshold = 30; };
              livenessProbe = httpProbe "/health/live" { periodSeconds = 10; failureThreshold = 3; };
              readinessProbe = httpProbe "/health/ready" { periodSeconds = 5; failureThreshold = 2; successThreshold = 1; };
              lifecycle.preStop.sleep.seconds = sd.preStopSeconds;
              resources = platform.resources app.resources;
              securityContext = platform.containerSecurityContext;
            } // lib.optionalAttrs redisClient {
              volumeMounts = [{
                name = "redis-auth";
                mountPath = secret.appMountPath;
                readOnly = true;
              }];
            })
          ];
        } // lib.optionalAttrs redisClient {
          volumes = [{
            name = "redis-auth";
            secret = {
              secretName = secret.name;
              items = [{ key = secret.passwordKey; path = secret.passwordKey; }];
              defaultMode = 288; # 0440: readable by fsGroup 10001 only
            };
          }];
        } // platform.spread name;
      };
    };
  };

  services.${name} = {
    metadata = meta;
    spec = {
      type = "ClusterIP";
      selector = platform.selector name;
      ports = [{ name = "http"; inherit port; targetPort = "http"; protocol = "TCP"; }];
    };
  };

  horizontalPodAutoscalers.${name} = {
    metadata = meta;
    spec = {
      scaleTargetRef = { apiVersion = "apps/v1"; kind = "Deployment"; inherit name; };
      inherit (app) minReplicas maxReplicas;
      metrics = [{
        type = "Resource";
        resource = {
          name = "cpu";
          target = { type = "Utilization"; averageUtilization = app.cpuTargetPercent; };
        };
      }];
      behavior = {
        scaleUp = {
          stabilizationWindowSeconds = 0;
          selectPolicy = "Max";
          policies = [
            { type = "Percent"; value = 100; periodSeconds = 30; }
            { type = "Pods"; value = 2; periodSeconds = 30; }
          ];
        };
        scaleDown = {
          stabilizationWindowSeconds = 300;
          selectPolicy = "Min";
          policies = [{ type = "Percent"; value = 50; periodSeconds = 60; }];
        };
      };
    };
  };

  podDisruptionBudgets.${name} = {
    metadata = meta;
    spec = {
      # maxUnavailable 1 (not minAvailable) can never block a node drain, even at 1 replica.
      maxUnavailable = 1;
      unhealthyPodEvictionPolicy = "AlwaysAllow";
      selector.matchLabels = platform.selector name;
    };
  };
}
