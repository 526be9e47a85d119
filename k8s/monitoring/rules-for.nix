# Prometheus recording and alerting rules of users-platform: the single source of truth.
#
# A function of the namespace (and the Ingress' name and namespace label); every argument has a
# default (prod). ./rules.nix is this called with the defaults, as pure data.
# Consumers:
#   - scripts/render-rules writes monitoring/rules.yml from it (promtool tests, the real-Prometheus test);
#   - k8s/monitoring.nix puts `groups` into the prod PrometheusRule, called with the env's namespace.
#
# Every selector of every rule is scoped to `namespace`: a Prometheus that scrapes the whole
# cluster also sees other teams' `api-gateway` jobs, `redis` containers and HPAs of the same
# names, and those must neither fire our alerts nor hide our absence
# (monitoring/tests/foreign_namespace_test.yml).
# Documentation: docs/monitoring.md (SLOs, alert table), docs/runbook.md (one section per alert).
{
  # The platform's namespace (k8s: usersPlatform.namespace).
  namespace ? (import ./common.nix).defaultNamespace
  # Name of the api-gateway Ingress ("" = no Ingress: no ingress SLI rules).
, ingressName ? "api-gateway"
  # Label holding the Ingress' namespace on ingress-nginx metrics (k8s: monitoring.ingressNamespaceLabel).
, ingressNamespaceLabel ? "exported_namespace"
}:
let
  inherit (builtins) concatMap concatStringsSep replaceStrings;

  common = import ./common.nix;
  inherit (common) gateway userService jobs containers hpas redisStatefulSet sloTarget latencyThreshold;

  # GitHub heading anchor of a runbook section. Every section heading in docs/runbook.md is the bare
  # alert name, so the anchor is the name in lower case (scripts/check-monitoring verifies it).
  lower = replaceStrings
    [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ]
    [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  runbookUrl = name: "${common.runbook}#${lower name}";

  # The scope of every selector.
  ns = ''namespace="${namespace}"'';

  # Availability SLO of the public API: 99.9 % of /api/ requests answered without a 5xx.
  # Two views of the same requests, recorded with a `source` label:
  #  - ingress: the ingress controller's count (nginx_ingress_controller_requests) for our Ingress,
  #    which also charges the 502/503/504 the controller answers itself when no gateway pod is
  #    ready or reachable (the gateway cannot count requests that never reach it);
  #  - gateway: the gateway's own http_requests_total on /api/ routes (the second view; it keeps
  #    the SLO measured if the controller's metrics are missing).
  # The burn-rate alerts take the worse of the two views.
  errorBudget = "(1 - ${sloTarget})";
  apiSelector = ''${ns}, job="${gateway}", route=~"/api/.+"'';
  ingressSelector = ''${ingressNamespaceLabel}="${namespace}", ingress="${ingressName}"'';
  availability = ''${ns}, slo="api-availability"'';

  # Windows the burn-rate alerts need (long and short window of each tier).
  windows = [ "5m" "30m" "1h" "2h" "6h" "1d" "3d" ];
  # Latency histograms: the alert and the dashboard use 5m; 30m and 1h for trends.
  latencyWindows = [ "5m" "30m" "1h" ];

  record = name: expr: { record = name; inherit expr; };
  recordWith = name: labels: expr: { record = name; inherit expr labels; };

  alert = { name, expr, for, severity, summary, description }: {
    alert = name;
    inherit expr for;
    labels = { inherit severity; };
    annotations = {
      inherit summary description;
      runbook_url = runbookUrl name;
    };
  };

  # ---- recording rules: SLIs per job ------------------------------------------------------------
  # Aggregations keep `namespace` (one installation per namespace) so a Prometheus that scrapes
  # several installations keeps their SLIs apart; without the label (local tests) it is a no-op.
  jobRequestRules = w: [
    (record "job:http_requests:rate${w}"
      ''sum by (namespace, job) (rate(http_requests_total{${ns}, job=~"${jobs}"}[${w}]))'')
    (record "job:http_requests_5xx:rate${w}"
      ''sum by (namespace, job) (rate(http_requests_total{${ns}, job=~"${jobs}", status=~"5.."}[${w}]))'')
    # `or 0 * ...` makes the ratio 0 (instead of absent) while no 5xx series exists yet.
    (record "job:http_requests_error:ratio_rate${w}" ''
      (job:http_requests_5xx:rate${w}{${ns}} or 0 * job:http_requests:rate${w}{${ns}})
      /
      job:http_requests:rate${w}{${ns}}
    '')
  ];

  jobLatencyRules = w: [
    (record "job_le:http_request_duration_seconds_bucket:rate${w}"
      ''sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{${ns}, job=~"${jobs}"}[${w}]))'')
  ];

  quantileRules = [
    (record "job:http_request_duration_seconds:p50_rate5m"
      "histogram_quantile(0.50, job_le:http_request_duration_seconds_bucket:rate5m{${ns}})")
    (record "job:http_request_duration_seconds:p99_rate5m"
      "histogram_quantile(0.99, job_le:http_request_duration_seconds_bucket:rate5m{${ns}})")
  ];

  # Per route (RED per route on the dashboard).
  routeRules = [
    (record "job_route:http_requests:rate5m"
      ''sum by (namespace, job, route) (rate(http_requests_total{${ns}, job=~"${jobs}"}[5m]))'')
    (record "job_route:http_requests_5xx:rate5m"
      ''sum by (namespace, job, route) (rate(http_requests_total{${ns}, job=~"${jobs}", status=~"5.."}[5m]))'')
    (record "job_route_le:http_request_duration_seconds_bucket:rate5m"
      ''sum by (namespace, job, route, le) (rate(http_request_duration_seconds_bucket{${ns}, job=~"${jobs}"}[5m]))'')
  ];

  # ---- recording rules: SLO of the public API -------------------------------------------------
  # The ingress view: label_replace moves the Ingress' namespace into `namespace` (on the raw
  # series `namespace` is the controller's), so both views carry the platform's namespace.
  ingressRate = w: extra: ''
    sum by (namespace) (
      label_replace(rate(nginx_ingress_controller_requests{${ingressSelector}${extra}}[${w}]), "namespace", "$1", "${ingressNamespaceLabel}", "(.*)")
    )'';
  ingressSloRules = w: if ingressName == "" then [ ] else [
    (recordWith "slo:sli_requests:rate${w}" { slo = "api-availability"; source = "ingress"; } (ingressRate w ""))
    (recordWith "slo:sli_errors:rate${w}" { slo = "api-availability"; source = "ingress"; } (ingressRate w '', status=~"5.."''))
  ];

  sloRules = w: ingressSloRules w ++ [
    (recordWith "slo:sli_requests:rate${w}" { slo = "api-availability"; source = "gateway"; }
      ''sum by (namespace, job) (rate(http_requests_total{${apiSelector}}[${w}]))'')
    (recordWith "slo:sli_errors:rate${w}" { slo = "api-availability"; source = "gateway"; }
      ''sum by (namespace, job) (rate(http_requests_total{${apiSelector}, status=~"5.."}[${w}]))'')
    # One ratio per view (the label sets of the two sides match per source).
    (recordWith "slo:sli_error:ratio_rate${w}" { slo = "api-availability"; } ''
      (slo:sli_errors:rate${w}{${availability}} or 0 * slo:sli_requests:rate${w}{${availability}})
      /
      slo:sli_requests:rate${w}{${availability}}
    '')
  ];

  latencySloRules = [
    (recordWith "slo:sli_latency:p99_rate5m" { slo = "api-latency"; }
      ''histogram_quantile(0.99, sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{${apiSelector}}[5m])))'')
  ];

  # ---- alerts ---------------------------------------------------------------------------------
  # Multi-window burn-rate alert: a tier fires while the error ratio is above `factor` times the
  # budget over both its long and its short window. The tiers are written once and give both the
  # expression and the summary; the page and the ticket alert differ only in tiers and wording.
  # Each window takes the worse of the ingress and gateway views.
  burn = { factor, long, short }: ''
    (
      max by (namespace, slo) (slo:sli_error:ratio_rate${long}{${availability}}) > (${factor} * ${errorBudget})
      and
      max by (namespace, slo) (slo:sli_error:ratio_rate${short}{${availability}}) > (${factor} * ${errorBudget})
    )'';
  burnAlert = { name, tiers, for, severity, summary, budgetGone }: alert {
    inherit name for severity;
    expr = concatStringsSep "\nor\n" (map burn tiers) + "\n";
    summary = "${summary} (${concatStringsSep " or " (map (t: "${t.factor}x over ${t.long}") tiers)})";
    description = "{{ $value | humanizePercentage }} of /api/ requests to {{ $labels.namespace }} failed with a 5xx over the long window, in the worse of the ingress and gateway views (budget: 0.1 %). ${budgetGone}";
  };

  sloAlerts = [
    (burnAlert {
      name = "ApiErrorBudgetBurnFast";
      tiers = [{ factor = "14.4"; long = "1h"; short = "5m"; } { factor = "6"; long = "6h"; short = "30m"; }];
      for = "2m";
      severity = "page";
      summary = "Public API is burning its 99.9 % error budget fast";
      budgetGone = "At 14.4x the 30-day error budget is gone in about 2 days, at 6x in 5 days.";
    })
    (burnAlert {
      name = "ApiErrorBudgetBurnSlow";
      tiers = [{ factor = "3"; long = "1d"; short = "2h"; } { factor = "1"; long = "3d"; short = "6h"; }];
      for = "15m";
      severity = "ticket";
      summary = "Public API is burning its 99.9 % error budget";
      budgetGone = "At 3x the 30-day error budget is gone in 10 days, at 1x in exactly 30 days.";
    })
    (alert {
      name = "ApiLatencyP99High";
      # 250 ms = 25x the benchmark p99 (10 ms at 32 connections on 2 cores) and exactly a histogram
      # bucket boundary, so the estimate is exact at the threshold; needs some traffic (0.1 req/s)
      # because the p99 of a handful of requests is just their maximum. See docs/monitoring.md.
      expr = ''
        slo:sli_latency:p99_rate5m{${ns}, slo="api-latency"} > ${latencyThreshold}
        and on (namespace, job)
        slo:sli_requests:rate5m{${availability}, source="gateway"} > 0.1
      '';
      for = "10m";
      severity = "ticket";
      summary = "Public API p99 latency is above 250 ms";
      description = "The 99th percentile latency of /api/ requests through {{ $labels.job }} has been {{ $value | humanizeDuration }} (over 5 minutes) for 10 minutes; the latency SLO is p99 <= 250 ms.";
    })
  ];

  availabilityAlerts = [
    (alert {
      name = "ApiGatewayDown";
      # absent(): when no gateway target is discovered at all, the SLI is gone and the
      # error-budget alerts are blind, so this alert must page on its own.
      expr = ''
        sum by (namespace, job) (up{${ns}, job="${gateway}"}) == 0
        or
        absent(up{${ns}, job="${gateway}"})
      '';
      for = "2m";
      severity = "page";
      summary = "No api-gateway target is up: the public API is down";
      description = "Prometheus has not scraped any api-gateway instance successfully for 2 minutes (or none is discovered). The public API is probably unreachable, and the error-budget alerts cannot see it because the gateway exports the SLI.";
    })
    (alert {
      name = "TargetDown";
      expr = ''up{${ns}, job=~"${jobs}"} == 0'';
      for = "5m";
      severity = "ticket";
      summary = "{{ $labels.job }} target {{ $labels.instance }} is down";
      description = "Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} for 5 minutes: the process is down, hanging, or unreachable from Prometheus.";
    })
    (alert {
      name = "RedisUnreachable";
      expr = ''dependency_up{${ns}, job="${userService}", dependency="redis"} == 0'';
      for = "2m";
      severity = "page";
      summary = "user-service {{ $labels.instance }} cannot reach Redis and is not ready";
      description = "The Redis check (PING, every 2 s) of user-service {{ $labels.instance }} has failed for 2 minutes. The instance reports not ready (/health/ready 503) and every user request it gets fails with 503.";
    })
    (alert {
      name = "GatewayUpstreamDown";
      expr = ''dependency_up{${ns}, job="${gateway}", dependency="user-service"} == 0'';
      for = "2m";
      severity = "page";
      summary = "api-gateway {{ $labels.instance }} cannot reach the user-service";
      description = "The upstream check of api-gateway {{ $labels.instance }} has failed for 2 minutes. The instance reports not ready and /api/ requests through it fail with 502/503/504.";
    })
    (alert {
      name = "LoadShedding";
      expr = ''rate(http_requests_shed_total{${ns}, job=~"${jobs}"}[5m]) > 0'';
      for = "5m";
      severity = "warning";
      summary = "{{ $labels.job }} {{ $labels.instance }} is shedding load";
      description = "{{ $labels.job }} at {{ $labels.instance }} has rejected {{ $value | humanize }} requests/s with 503 for 5 minutes because MAX_CONCURRENT_REQUESTS requests were already in flight.";
    })
  ];

  # Replicated Redis (prod: three pods, a Sentinel in each). No Redis or Sentinel exporter runs:
  # the user-service's redis_primary gauge says which node each instance writes to, and
  # kube-state-metrics counts ready Redis pods (readiness = serving its role: a replica is ready
  # only while linked to its primary and synced). With one node both stay silent.
  redisAlerts = [
    (alert {
      name = "RedisPrimaryDisagreement";
      expr = ''
        count by (namespace) (
          count by (namespace, address) (redis_primary{${ns}, job="${userService}"} == 1)
        ) > 1
      '';
      for = "2m";
      severity = "page";
      summary = "user-service instances write to {{ $value }} different Redis primaries";
      description = "For 2 minutes the user-service instances of {{ $labels.namespace }} have named {{ $value }} different Redis nodes as their primary (redis_primary). After a failover every instance follows within seconds; a lasting disagreement means a split brain or instances stuck on a demoted node, and writes to the wrong node may be lost.";
    })
    (alert {
      name = "RedisReplicaMissing";
      expr = ''
        max by (namespace, statefulset) (kube_statefulset_status_replicas_ready{${ns}, statefulset="${redisStatefulSet}"})
        < on (namespace, statefulset)
        max by (namespace, statefulset) (kube_statefulset_replicas{${ns}, statefulset="${redisStatefulSet}"})
      '';
      for = "10m";
      severity = "ticket";
      summary = "Only {{ $value }} Redis pods are ready";
      description = "For 10 minutes fewer Redis pods of {{ $labels.namespace }} have been ready than the StatefulSet asks for: one replica fewer to confirm writes, one Sentinel fewer for the failover majority. At one ready pod writes stop (min-replicas-to-write) and no failover is possible.";
    })
  ];

  kubernetesAlerts = [
    (alert {
      name = "PodRestartLoop";
      expr = ''increase(kube_pod_container_status_restarts_total{${ns}, container=~"${containers}"}[30m]) > 2'';
      for = "5m";
      severity = "ticket";
      summary = "Container {{ $labels.container }} of {{ $labels.namespace }}/{{ $labels.pod }} keeps restarting";
      description = "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} restarted {{ $value | printf \"%.0f\" }} times in the last 30 minutes.";
    })
    (alert {
      name = "HpaAtMaxReplicas";
      expr = ''
        max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_current_replicas{${ns}, horizontalpodautoscaler=~"${hpas}"})
        >= on (namespace, horizontalpodautoscaler)
        max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas{${ns}, horizontalpodautoscaler=~"${hpas}"})
        unless on (namespace, horizontalpodautoscaler)
        (
          max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas{${ns}, horizontalpodautoscaler=~"${hpas}"})
          ==
          max by (namespace, horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_min_replicas{${ns}, horizontalpodautoscaler=~"${hpas}"})
        )
      '';
      for = "15m";
      severity = "warning";
      summary = "HPA {{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} is pinned at its maximum replicas";
      description = "HPA {{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} has run {{ $value }} replicas, its maxReplicas, for 15 minutes: it cannot scale out any further.";
    })
    (alert {
      name = "ContainerMemoryNearLimit";
      expr = ''
        max by (namespace, pod, container) (container_memory_working_set_bytes{${ns}, container=~"${containers}"})
        / on (namespace, pod, container)
        max by (namespace, pod, container) (kube_pod_container_resource_limits{${ns}, resource="memory", container=~"${containers}"})
        > 0.9
      '';
      for = "10m";
      severity = "warning";
      summary = "Container {{ $labels.container }} of {{ $labels.namespace }}/{{ $labels.pod }} is near its memory limit";
      description = "Container {{ $labels.container }} of pod {{ $labels.namespace }}/{{ $labels.pod }} has used {{ $value | humanizePercentage }} of its memory limit for 10 minutes; above 100 % it is OOM-killed.";
    })
  ];
in
{
  groups = [
    {
      name = "users-platform.sli.rules";
      rules = concatMap jobRequestRules windows
        ++ concatMap jobLatencyRules latencyWindows
        ++ quantileRules
        ++ routeRules;
    }
    {
      # The SLO alerts share the group of the recordings they read: rules of one group run in
      # order at the same timestamp, so an alert never evaluates a recording one interval stale.
      name = "users-platform.slo";
      rules = concatMap sloRules windows ++ latencySloRules ++ sloAlerts;
    }
    {
      name = "users-platform.availability.alerts";
      rules = availabilityAlerts;
    }
    {
      name = "users-platform.redis.alerts";
      rules = redisAlerts;
    }
    {
      name = "users-platform.kubernetes.alerts";
      rules = kubernetesAlerts;
    }
  ];
}
