# Grafana dashboard of users-platform, generated from the helpers below (no hand-copied JSON).
#
# Pure data, no arguments:  nix-instantiate --eval --strict --json k8s/monitoring/dashboard.nix
# The prod render ships it in a ConfigMap labelled grafana_dashboard: "1" (Grafana sidecar).
# Queries use the recording rules of ./rules-for.nix where one exists; scripts/check-monitoring checks
# that every metric queried here is exported by the running services (or is a known external).
# Every query is scoped to the `namespace` template variable (default: the prod namespace), so
# a cluster-wide Prometheus never mixes another namespace's api-gateway into these panels.
# Panel descriptions are in docs/monitoring.md ("Dashboard").
let
  inherit (builtins) elemAt foldl' genList length map;
  inherit (import ./common.nix) jobs runbook sloTarget latencyThreshold defaultNamespace;
  latencyThresholdNumber = builtins.fromJSON latencyThreshold;

  # ---- helpers --------------------------------------------------------------------------------
  datasource = { type = "prometheus"; uid = "\${datasource}"; };

  refIds = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" ];

  # One PromQL query of a panel: [ expr legend ].
  q = expr: legend: { inherit expr legend; };

  mkTargets = queries: genList
    (i:
      let query = elemAt queries i; in {
        inherit datasource;
        refId = elemAt refIds i;
        expr = query.expr;
        legendFormat = query.legend;
        range = true;
        instant = false;
      })
    (length queries);

  thresholdSteps = steps: {
    mode = "absolute";
    steps = [{ color = "green"; value = null; }] ++ steps;
  };

  # A time series panel; w/h are grid units (the grid is 24 wide).
  timeseries =
    { title
    , description
    , queries
    , unit ? "short"
    , min ? null
    , max ? null
    , stack ? false
    , thresholds ? [ ]
    , w ? 12
    , h ? 8
    }: {
      type = "timeseries";
      inherit title description w h datasource;
      targets = mkTargets queries;
      fieldConfig = {
        defaults = {
          inherit unit;
          color.mode = "palette-classic";
          custom = {
            drawStyle = "line";
            lineWidth = 1;
            fillOpacity = if stack then 30 else 10;
            showPoints = "never";
            spanNulls = false;
            stacking = { mode = if stack then "normal" else "none"; group = "A"; };
            thresholdsStyle.mode = if thresholds == [ ] then "off" else "dashed";
          };
          thresholds = thresholdSteps thresholds;
        } // (if min == null then { } else { inherit min; })
        // (if max == null then { } else { inherit max; });
        overrides = [ ];
      };
      options = {
        legend = { displayMode = "table"; placement = "bottom"; showLegend = true; calcs = [ "lastNotNull" "max" ]; };
        tooltip = { mode = "multi"; sort = "desc"; };
      };
    };

  # A single-value panel.
  stat =
    { title
    , description
    , query
    , unit ? "short"
    , decimals ? null
    , thresholds ? [ ]
    , w ? 6
    , h ? 4
    }: {
      type = "stat";
      inherit title description w h datasource;
      targets = mkTargets [ query ];
      fieldConfig = {
        defaults = {
          inherit unit;
          color.mode = "thresholds";
          thresholds = thresholdSteps thresholds;
        } // (if decimals == null then { } else { inherit decimals; });
        overrides = [ ];
      };
      options = {
        reduceOptions = { calcs = [ "lastNotNull" ]; fields = ""; values = false; };
        colorMode = "value";
        graphMode = "area";
        justifyMode = "auto";
        orientation = "auto";
        textMode = "auto";
      };
    };

  row = title: panels: { inherit title panels; };

  # Lays rows out on the 24-column grid (left to right, wrapping) and numbers the panels.
  layout = rows:
    let
      place = state: panel:
        let
          wrap = state.x + panel.w > 24;
          x = if wrap then 0 else state.x;
          y = if wrap then state.y + state.lineH else state.y;
          lineH = if wrap then panel.h else (if panel.h > state.lineH then panel.h else state.lineH);
          placed = (removeAttrs panel [ "w" "h" ]) // {
            id = state.id;
            gridPos = { inherit x y; inherit (panel) w h; };
          };
        in
        { x = x + panel.w; inherit y lineH; id = state.id + 1; out = state.out ++ [ placed ]; };
      addRow = state: r:
        let
          y = state.y + state.lineH;
          header = {
            type = "row";
            inherit (r) title;
            id = state.id;
            collapsed = false;
            panels = [ ];
            gridPos = { x = 0; inherit y; w = 24; h = 1; };
          };
        in
        foldl' place
          { x = 0; y = y + 1; lineH = 0; id = state.id + 1; out = state.out ++ [ header ]; }
          r.panels;
    in
    (foldl' addRow { x = 0; y = 0; lineH = 0; id = 1; out = [ ]; } rows).out;

  rate = expr: "rate(${expr}[$__rate_interval])";

  # ---- panels ---------------------------------------------------------------------------------
  burnRate = window: q
    "max(slo:sli_error:ratio_rate${window}{namespace=\"$namespace\", slo=\"api-availability\"}) / (1 - ${sloTarget})"
    "${window}";

  sloRow = row "SLO: public API (api-gateway, /api/*)" [
    (stat {
      title = "Availability (3d)";
      description = "Share of /api/ requests answered without a 5xx over the last 3 days, in the worse of the ingress and gateway views. SLO: 99.9 %.";
      query = q "1 - max(slo:sli_error:ratio_rate3d{namespace=\"$namespace\", slo=\"api-availability\"})" "availability";
      unit = "percentunit";
      decimals = 3;
      thresholds = [{ color = "red"; value = 0; } { color = "green"; value = 0.999; }];
    })
    (stat {
      title = "Error budget burn rate (1h)";
      description = "How fast the 30-day error budget (0.1 % of requests) is being spent: 1 = exactly on budget; the page fires at 14.4 (1h and 5m).";
      query = burnRate "1h";
      decimals = 2;
      thresholds = [{ color = "yellow"; value = 1; } { color = "red"; value = 14.4; }];
    })
    (stat {
      title = "p99 latency (5m)";
      description = "99th percentile latency of /api/ requests at the gateway. SLO: p99 <= 250 ms.";
      query = q "slo:sli_latency:p99_rate5m{namespace=\"$namespace\", slo=\"api-latency\"}" "p99";
      unit = "s";
      thresholds = [{ color = "red"; value = latencyThresholdNumber; }];
    })
    (stat {
      title = "Request rate (5m)";
      description = "Requests per second to the public API (/api/ routes), the larger of the ingress and gateway counts.";
      query = q "max(slo:sli_requests:rate5m{namespace=\"$namespace\", slo=\"api-availability\"})" "req/s";
      unit = "reqps";
    })
    (timeseries {
      title = "Error budget burn rate";
      description = "Error ratio of /api/ requests divided by the error budget (0.1 %), per alert window. Page: 14.4 over 1h and 5m, or 6 over 6h and 30m. Ticket: 3 over 1d and 2h, or 1 over 3d and 6h.";
      queries = map burnRate [ "5m" "30m" "1h" "2h" "6h" "1d" "3d" ];
      thresholds = [{ color = "orange"; value = 1; } { color = "red"; value = 14.4; }];
      min = 0;
    })
    (timeseries {
      title = "p99 latency of the public API";
      description = "p99 of /api/ requests at the gateway (5m). ApiLatencyP99High fires above 250 ms for 10 minutes.";
      queries = [ (q "slo:sli_latency:p99_rate5m{namespace=\"$namespace\", slo=\"api-latency\"}" "p99") ];
      unit = "s";
      thresholds = [{ color = "red"; value = latencyThresholdNumber; }];
      min = 0;
    })
  ];

  # RED (rate, errors, duration) per route of one service.
  redRow = job: row "${job}: requests per route (RED)" [
    (timeseries {
      title = "${job}: request rate by route";
      description = "Requests per second handled by ${job}, by matched route template.";
      queries = [ (q "job_route:http_requests:rate5m{namespace=\"$namespace\", job=\"${job}\"}" "{{route}}") ];
      unit = "reqps";
      w = 8;
    })
    (timeseries {
      title = "${job}: 5xx ratio by route";
      description = "Share of the requests of each route answered with a 5xx (no line: no 5xx at all).";
      queries = [ (q "job_route:http_requests_5xx:rate5m{namespace=\"$namespace\", job=\"${job}\"} / job_route:http_requests:rate5m{namespace=\"$namespace\", job=\"${job}\"}" "{{route}}") ];
      unit = "percentunit";
      min = 0;
      w = 8;
    })
    (timeseries {
      title = "${job}: responses by status";
      description = "Responses per second by HTTP status code (4xx are the clients' errors, 5xx ours).";
      queries = [ (q "sum by (status) (${rate "http_requests_total{namespace=\"$namespace\", job=\"${job}\"}"})" "{{status}}") ];
      unit = "reqps";
      stack = true;
      w = 8;
    })
    (timeseries {
      title = "${job}: p99 latency by route";
      description = "99th percentile request duration of each route (5m).";
      queries = [ (q "histogram_quantile(0.99, job_route_le:http_request_duration_seconds_bucket:rate5m{namespace=\"$namespace\", job=\"${job}\"})" "{{route}}") ];
      unit = "s";
      min = 0;
    })
    (timeseries {
      title = "${job}: p50 latency by route";
      description = "Median request duration of each route (5m).";
      queries = [ (q "histogram_quantile(0.5, job_route_le:http_request_duration_seconds_bucket:rate5m{namespace=\"$namespace\", job=\"${job}\"})" "{{route}}") ];
      unit = "s";
      min = 0;
    })
  ];

  dependencyRow = row "Dependencies: gateway -> user-service -> Redis" [
    (timeseries {
      title = "Upstream latency (gateway -> user-service)";
      description = "p99 and p50 of the gateway's calls to the user-service, by route.";
      queries = [
        (q "histogram_quantile(0.99, sum by (route, le) (${rate "upstream_request_duration_seconds_bucket{namespace=\"$namespace\", job=\"api-gateway\"}"}))" "p99 {{route}}")
        (q "histogram_quantile(0.5, sum by (route, le) (${rate "upstream_request_duration_seconds_bucket{namespace=\"$namespace\", job=\"api-gateway\"}"}))" "p50 {{route}}")
      ];
      unit = "s";
      min = 0;
      w = 8;
    })
    (timeseries {
      title = "Upstream calls by outcome, retries";
      description = "Calls from the gateway to the user-service per second by outcome (ok, error, timeout), and retries of GET requests after a connection error.";
      queries = [
        (q "sum by (outcome) (${rate "upstream_request_duration_seconds_count{namespace=\"$namespace\", job=\"api-gateway\"}"})" "{{outcome}}")
        (q "sum(${rate "upstream_retries_total{namespace=\"$namespace\", job=\"api-gateway\"}"})" "retries")
      ];
      unit = "reqps";
      w = 8;
    })
    (timeseries {
      title = "Dependency checks";
      description = "1 = the dependency answered its last background check (every 2 s): Redis PING from the user-service, the user-service from the gateway.";
      queries = [ (q "dependency_up{namespace=\"$namespace\", job=~\"${jobs}\"}" "{{job}} {{instance}} -> {{dependency}}") ];
      min = 0;
      max = 1;
      w = 8;
    })
    (timeseries {
      title = "Redis command latency";
      description = "p99 and p50 duration of the user-service's Redis commands, by command.";
      queries = [
        (q "histogram_quantile(0.99, sum by (command, le) (${rate "redis_command_duration_seconds_bucket{namespace=\"$namespace\", job=\"user-service\"}"}))" "p99 {{command}}")
        (q "histogram_quantile(0.5, sum by (command, le) (${rate "redis_command_duration_seconds_bucket{namespace=\"$namespace\", job=\"user-service\"}"}))" "p50 {{command}}")
      ];
      unit = "s";
      min = 0;
    })
    (timeseries {
      title = "Redis commands by outcome";
      description = "Redis commands per second by outcome (ok, error, timeout).";
      queries = [ (q "sum by (outcome) (${rate "redis_command_duration_seconds_count{namespace=\"$namespace\", job=\"user-service\"}"})" "{{outcome}}") ];
      unit = "ops";
      stack = true;
    })
  ];

  saturationRow = row "Saturation and resources" [
    (timeseries {
      title = "In-flight requests";
      description = "Requests being handled right now, per instance. Above MAX_CONCURRENT_REQUESTS (default 512) requests are shed.";
      queries = [ (q "http_requests_in_flight{namespace=\"$namespace\", job=~\"${jobs}\"}" "{{job}} {{instance}}") ];
      min = 0;
    })
    (timeseries {
      title = "Shed requests";
      description = "Requests per second rejected with 503 by the concurrency limit (LoadShedding fires when this stays above 0 for 5 minutes).";
      queries = [ (q "sum by (job, instance) (${rate "http_requests_shed_total{namespace=\"$namespace\", job=~\"${jobs}\"}"})" "{{job}} {{instance}}") ];
      unit = "reqps";
      min = 0;
    })
    (timeseries {
      title = "Memory (RSS)";
      description = "Resident memory of each process.";
      queries = [ (q "process_resident_memory_bytes{namespace=\"$namespace\", job=~\"${jobs}\"}" "{{job}} {{instance}}") ];
      unit = "bytes";
      min = 0;
      w = 8;
    })
    (timeseries {
      title = "CPU";
      description = "CPU time used per second (1 = one full core).";
      queries = [ (q (rate "process_cpu_seconds_total{namespace=\"$namespace\", job=~\"${jobs}\"}") "{{job}} {{instance}}") ];
      unit = "short";
      min = 0;
      w = 8;
    })
    (timeseries {
      title = "Open file descriptors";
      description = "Open file descriptors as a share of the process limit (sockets count).";
      queries = [ (q "process_open_fds{namespace=\"$namespace\", job=~\"${jobs}\"} / process_max_fds{namespace=\"$namespace\", job=~\"${jobs}\"}" "{{job}} {{instance}}") ];
      unit = "percentunit";
      min = 0;
      w = 8;
    })
  ];

  inventoryRow = row "Users, targets and versions" [
    (stat {
      title = "Users";
      description = "Number of stored users (users_total of the user-service; every instance reads the same Redis).";
      query = q "max(users_total{namespace=\"$namespace\", job=\"user-service\"})" "users";
      w = 6;
    })
    (timeseries {
      title = "Users over time";
      description = "users_total over time.";
      queries = [ (q "max(users_total{namespace=\"$namespace\", job=\"user-service\"})" "users") ];
      min = 0;
      w = 6;
      h = 4;
    })
    (stat {
      title = "Targets up";
      description = "Scrape targets of both services that are up.";
      query = q "sum(up{namespace=\"$namespace\", job=~\"${jobs}\"})" "up";
      thresholds = [{ color = "red"; value = 0; } { color = "green"; value = 1; }];
      w = 6;
    })
    (stat {
      title = "Uptime (youngest process)";
      description = "Time since the youngest process started; a small value that keeps resetting means restarts.";
      query = q "time() - max(process_start_time_seconds{namespace=\"$namespace\", job=~\"${jobs}\"})" "uptime";
      unit = "s";
      w = 6;
    })
    (timeseries {
      title = "Versions running";
      description = "Instances per service and version (build_info).";
      queries = [ (q "count by (job, version, revision) (build_info{namespace=\"$namespace\", job=~\"${jobs}\"})" "{{job}} {{version}} {{revision}}") ];
      min = 0;
      w = 24;
      h = 6;
    })
  ];
in
{
  uid = "users-platform";
  title = "users-platform";
  description = "RED per route, dependencies, saturation and the SLO of the public API of users-platform.";
  tags = [ "users-platform" "slo" ];
  timezone = "browser";
  editable = true;
  graphTooltip = 1;
  schemaVersion = 39;
  version = 1;
  refresh = "30s";
  time = { from = "now-6h"; to = "now"; };
  annotations.list = [ ];
  links = [
    {
      title = "Runbook";
      type = "link";
      url = runbook;
      targetBlank = true;
      icon = "doc";
      tags = [ ];
      asDropdown = false;
      includeVars = false;
      keepTime = false;
      tooltip = "";
    }
  ];
  templating.list = [
    {
      name = "datasource";
      label = "Data source";
      type = "datasource";
      query = "prometheus";
      current = { };
      hide = 0;
      refresh = 1;
      regex = "";
      includeAll = false;
      multi = false;
      options = [ ];
      skipUrlSync = false;
    }
    {
      name = "namespace";
      label = "Namespace";
      type = "query";
      inherit datasource;
      query = "label_values(up{job=\"api-gateway\"}, namespace)";
      definition = "label_values(up{job=\"api-gateway\"}, namespace)";
      current = { text = defaultNamespace; value = defaultNamespace; };
      hide = 0;
      refresh = 1;
      regex = "";
      sort = 1;
      includeAll = false;
      multi = false;
      options = [ ];
      skipUrlSync = false;
    }
  ];
  panels = layout [
    sloRow
    (redRow "api-gateway")
    (redRow "user-service")
    dependencyRow
    saturationRow
    inventoryRow
  ];
}
