# Default deny (ingress and egress) for every pod of the namespace, then explicit allows:
#   ingress controller pods (ingress.controller.namespace) -> api-gateway :gateway port
#   Prometheus pods (monitoring.namespace) -> api-gateway, user-service metrics (same port)
#   api-gateway       -> user-service :user-service pod port
#   user-service      -> redis        :redis port (+ :sentinel port when replicated)
#   replicated Redis: redis <-> redis :redis (replication, Sentinel's checks, the init's
#                     questions) and :sentinel (Sentinel gossip and failover votes)
#   redis-backup      -> redis        :redis port (redis-cli --rdb), when backups are on
#   every pod         -> kube-dns     :53 UDP+TCP
# Ports are pod (container) ports, never Service ports. Both namespaces are options
# (k8s/options.nix); they are matched by the kubernetes.io/metadata.name label the API server
# sets on every namespace, and always together with the pods' labels in ONE peer.
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
  p = cfg.ports;
  replicated = platform.redisReplicated;
  backup = cfg.redis.backup.enable;
  # The Redis pods' ports a peer may use: the server's, and the Sentinel's when there is one.
  redisPorts = [ (tcp p.redis) ] ++ lib.optional replicated (tcp p.sentinel);
  policy = name: spec: {
    metadata = platform.meta { inherit name; labelName = "users-platform"; component = "network-policy"; };
    inherit spec;
  };
  pods = name: { podSelector.matchLabels = platform.selector name; };
  tcp = port: { protocol = "TCP"; inherit port; };
  # Namespace and pod selector in ONE peer: "these pods in that namespace".
  podsIn = namespace: labels: {
    namespaceSelector.matchLabels."kubernetes.io/metadata.name" = namespace;
    podSelector.matchLabels = labels;
  };
  prometheus = podsIn cfg.monitoring.namespace cfg.monitoring.prometheusPodLabels;
  ingressController = podsIn cfg.ingress.controller.namespace cfg.ingress.controller.podLabels;
in
{
  kubernetes.resources.networkPolicies = {
    default-deny-all = policy "default-deny-all" {
      podSelector = { };
      policyTypes = [ "Ingress" "Egress" ];
    };

    allow-dns-egress = policy "allow-dns-egress" {
      podSelector = { };
      policyTypes = [ "Egress" ];
      egress = [{
        to = [{
          namespaceSelector.matchLabels."kubernetes.io/metadata.name" = "kube-system";
          podSelector.matchLabels."k8s-app" = "kube-dns";
        }];
        ports = [
          { protocol = "UDP"; port = 53; }
          { protocol = "TCP"; port = 53; }
        ];
      }];
    };

    api-gateway = policy "api-gateway" (pods "api-gateway" // {
      policyTypes = [ "Ingress" "Egress" ];
      # The ingress controller (client traffic) and Prometheus (metrics), on the gateway port only.
      ingress = [{
        from = [ ingressController prometheus ];
        ports = [ (tcp p.api-gateway) ];
      }];
      egress = [{
        to = [ (pods "user-service") ];
        ports = [ (tcp p.user-service) ];
      }];
    });

    user-service = policy "user-service" (pods "user-service" // {
      policyTypes = [ "Ingress" "Egress" ];
      ingress = [
        { from = [ (pods "api-gateway") ]; ports = [ (tcp p.user-service) ]; }
        { from = [ prometheus ]; ports = [ (tcp p.user-service) ]; }
      ];
      egress = [{
        to = [ (pods "redis") ];
        ports = redisPorts;
      }];
    });

    redis = policy "redis" (pods "redis" // {
      policyTypes = [ "Ingress" "Egress" ];
      ingress = [{
        from = [ (pods "user-service") ];
        ports = redisPorts;
      }]
      ++ lib.optional replicated { from = [ (pods "redis") ]; ports = redisPorts; }
      ++ lib.optional backup { from = [ (pods "redis-backup") ]; ports = [ (tcp p.redis) ]; };
      # One node: no egress beyond DNS (allowed by allow-dns-egress). Replicated: to the other
      # Redis pods only.
      egress = lib.optional replicated { to = [ (pods "redis") ]; ports = redisPorts; };
    });
  } // lib.optionalAttrs backup {
    # The backup job takes a snapshot over the Redis protocol and accepts no connection.
    redis-backup = policy "redis-backup" (pods "redis-backup" // {
      policyTypes = [ "Ingress" "Egress" ];
      ingress = [ ];
      egress = [{ to = [ (pods "redis") ]; ports = [ (tcp p.redis) ]; }];
    });
  };
}
