# Prometheus Operator and Grafana wiring (prod): ServiceMonitors for both services, the
# PrometheusRule holding the alert rules from k8s/monitoring/rules.nix, and the Grafana
# dashboard from k8s/monitoring/dashboard.nix as a sidecar-discovered ConfigMap.
# Prometheus job names are the Service names (api-gateway, user-service). Every ServiceMonitor
# and the PrometheusRule carry monitoring.selectionLabels (default release: kube-prometheus-stack),
# without which a kube-prometheus-stack Prometheus never loads them. The rules are scoped to
# this namespace (rules.nix is called with it).
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
  selected = meta: meta // { labels = meta.labels // cfg.monitoring.selectionLabels; };
  serviceMonitor = name: {
    metadata = selected (platform.meta { inherit name; component = "monitoring"; });
    spec = {
      selector.matchLabels = platform.selector name;
      namespaceSelector.matchNames = [ cfg.namespace ];
      endpoints = [{
        port = "http";
        path = "/metrics";
        scheme = "http";
        interval = "30s";
        scrapeTimeout = "10s";
      }];
    };
  };
in
{
  config = lib.mkIf cfg.monitoring.enable {
    kubernetes.resources = {
      serviceMonitors = {
        api-gateway = serviceMonitor "api-gateway";
        user-service = serviceMonitor "user-service";
      };

      prometheusRules.users-platform = {
        metadata = selected (platform.meta { name = "users-platform"; component = "monitoring"; });
        spec = import ./monitoring/rules-for.nix {
          inherit (cfg) namespace;
          ingressNamespaceLabel = cfg.monitoring.ingressNamespaceLabel;
          ingressName = lib.optionalString cfg.ingress.enable "api-gateway";
        };
      };

      configMaps.users-platform-dashboard = {
        metadata =
          let m = platform.meta { name = "users-platform-dashboard"; labelName = "users-platform"; component = "monitoring"; };
          in m // {
            labels = m.labels // { grafana_dashboard = "1"; };
            annotations.grafana_folder = "users-platform";
          };
        data."users-platform.json" = (import ./lib/json.nix).toPrettyJSON (import ./monitoring/dashboard.nix);
      };
    };
  };
}
