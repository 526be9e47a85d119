# Default deny (ingress and egress) for every pod of the namespace, then explicit allows:
#   any source        -> api-gateway  :gateway port
#   api-gateway       -> user-service :user-service pod port
#   user-service      -> redis        :redis port
#   monitoring ns (Prometheus pods) -> api-gateway, user-service metrics (same port)
#   every pod         -> kube-dns     :53 UDP+TCP
# Ports are pod (container) ports, never Service ports.
{ config, platform, ... }:
let
  cfg = config.usersPlatform;
  p = cfg.ports;
  policy = name: spec: {
    metadata = platform.meta { inherit name; labelName = "users-platform"; component = "network-policy"; };
    inherit spec;
  };
  pods = name: { podSelector.matchLabels = platform.selector name; };
  tcp = port: { protocol = "TCP"; inherit port; };
  # Namespace and pod selector in ONE peer: "Prometheus pods in the monitoring namespace".
  prometheus = {
    namespaceSelector.matchLabels."kubernetes.io/metadata.name" = "monitoring";
    podSelector.matchLabels."app.kubernetes.io/name" = "prometheus";
  };
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
      # From anywhere (ingress controller, load balancer, Prometheus) on the gateway port only.
      ingress = [{ ports = [ (tcp p.api-gateway) ]; }];
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
        ports = [ (tcp p.redis) ];
      }];
    });

    redis = policy "redis" (pods "redis" // {
      policyTypes = [ "Ingress" "Egress" ];
      ingress = [{
        from = [ (pods "user-service") ];
        ports = [ (tcp p.redis) ];
      }];
      # No egress beyond DNS (allowed by allow-dns-egress).
      egress = [ ];
    });
  };
}
