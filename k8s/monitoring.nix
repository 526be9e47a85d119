# Prometheus Operator and Grafana wiring (prod): ServiceMonitors for both services, the
# PrometheusRule holding the alert rules from k8s/monitoring/rules.nix, and the Grafana
# dashboard from k8s/monitoring/dashboard.nix as a sidecar-discovered ConfigMap.
# Prometheus job names are the Service names (api-gateway, user-service).
{ lib, config, platform, ... }:
let
  cfg = config.usersPlatform;
  serviceMonitor = name: {
    metadata = platform.meta { inherit name; component = "monitoring"; };
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
        metadata = platform.meta { name = "users-platform"; component = "monitoring"; };
        spec = import ./monitoring/rules.nix;
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
