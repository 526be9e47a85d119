# Names shared by rules.nix and dashboard.nix (pure data, no arguments).
rec {
  repo = "https://github.com/users-platform/users-platform";
  runbook = "${repo}/blob/main/docs/runbook.md";

  # The namespace rules.nix and the dashboard's `namespace` variable default to (prod's).
  defaultNamespace = "users-platform-prod";

  # Prometheus job names = the Kubernetes Service names.
  gateway = "api-gateway";
  userService = "user-service";
  jobs = "${gateway}|${userService}";

  # Container and HorizontalPodAutoscaler names of our workloads, as kube-state-metrics and
  # cAdvisor label them (the k8s modules name containers and HPAs after the component).
  containers = "${gateway}|${userService}|redis|sentinel";
  # The Redis StatefulSet, as kube-state-metrics labels it.
  redisStatefulSet = "redis";
  hpas = jobs;

  # Availability SLO of the public API (/api/ routes at the gateway).
  sloTarget = "0.999";
  # Latency SLO: p99 of the same requests, in seconds (a histogram bucket boundary).
  latencyThreshold = "0.25";
}
