-- Shared by the wrk scripts of scripts/bench: prints one machine-readable line at the end
-- of a run, which scripts/bench parses. Used alone (-s report.lua) for static requests such
-- as list pages: defining no request() keeps wrk on its pre-built request (cheapest client).
--
--   BENCH requests=N seconds=S rps=R p50_ms=A p99_ms=B errors_status=E errors_socket=K [extra]
--
-- errors_status is wrk's count of responses with status >= 400 (the API under test answers
-- 2xx or 4xx/5xx, never 3xx, so this is the non-2xx count); errors_socket adds connect,
-- read, write and timeout errors.

function bench_report(summary, latency, extra)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local line = string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f errors_status=%d errors_socket=%d",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout)
  if extra then
    line = line .. " " .. extra
  end
  io.write(line, "\n")
end

if done == nil then
  function done(summary, latency, _requests)
    bench_report(summary, latency, nil)
  end
end
