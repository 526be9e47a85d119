-- GET one random user per request from a file of ids (one per line).
--   wrk ... -s get-random.lua URL -- IDS_FILE PATH_PREFIX
-- e.g. PATH_PREFIX /users/ (user-service) or /api/users/ (gateway).

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local ids, count, prefix = {}, 0, "/users/"

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      count = count + 1
      ids[count] = line
    end
  end
  assert(count > 0, "no ids in " .. tostring(args[1]))
  prefix = args[2] or prefix
  -- Different threads draw different sequences.
  math.randomseed(os.time() + (tonumber(tostring(wrk.thread):match("0x(%x+)"), 16) or 0) % 100000)
end

function request()
  return wrk.format("GET", prefix .. ids[math.random(count)])
end
