-- POST users with unique emails and count what came back, so scripts/bench can check that
-- every 201 is in the store ("nothing lost").
--   wrk ... -s post-users.lua URL -- PATH TAG [TOTAL THREADS IDLE_PATH]
-- Emails are b<TAG>-t<thread>-<n>@bench.example, unique per run (TAG) and thread.
-- With TOTAL > 0 the THREADS wrk threads send TOTAL POSTs between them, then only GET
-- IDLE_PATH (cheap) until scripts/bench stops wrk: this is how seeding creates an exact
-- number of users.
-- The main thread prints, after the BENCH line's usual fields:
--   created=<201s> rejected=<other statuses to POSTs> sent=<POSTs sent> unanswered=<POSTs
--   without a response when wrk stopped>

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local threads, next_id = {}, 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- Per-thread state; globals so the main thread can read them with thread:get().
sent, created, rejected, idle_answers = 0, 0, 0, 0
local path, tag, quota, idle_path = "/users", "x", 0, "/health/live"
local headers = { ["Content-Type"] = "application/json" }
local idle_sent = 0

function init(args)
  path = args[1] or path
  tag = args[2] or tag
  local total = tonumber(args[3] or "0") or 0
  local nthreads = tonumber(args[4] or "1") or 1
  if total > 0 then
    quota = math.floor(total / nthreads) + ((tid < total % nthreads) and 1 or 0)
    -- A thread with nothing to send still needs a request to make.
    if quota == 0 then quota = -1 end
  end
  idle_path = args[5] or idle_path
end

-- wrk 4.1 calls request() once in thread 0's state before any connection exists, to check
-- for pipelining (script_verify_request), and discards the result: that call must not count.
local verified = false

function request()
  if tid == 0 and not verified then
    verified = true
    return wrk.format("GET", idle_path)
  end
  if quota < 0 or (quota > 0 and sent >= quota) then
    idle_sent = idle_sent + 1
    return wrk.format("GET", idle_path)
  end
  sent = sent + 1
  local body = string.format('{"name":"Bench User %d","email":"b%s-t%d-%d@bench.example"}',
    sent, tag, tid, sent)
  return wrk.format("POST", path, headers, body)
end

function response(status, _headers, _body)
  if status == 201 then
    created = created + 1
  elseif status == 200 and idle_sent > 0 then
    idle_answers = idle_answers + 1
  else
    rejected = rejected + 1
  end
end

function done(summary, latency, _requests)
  local s, c, r = 0, 0, 0
  for _, thread in ipairs(threads) do
    s = s + (thread:get("sent") or 0)
    c = c + (thread:get("created") or 0)
    r = r + (thread:get("rejected") or 0)
  end
  bench_report(summary, latency,
    string.format("created=%d rejected=%d sent=%d unanswered=%d", c, r, s, s - c - r))
end
