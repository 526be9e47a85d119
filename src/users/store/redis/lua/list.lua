-- One page of users in creation order, with the total, in one round trip.
-- KEYS: 1 creation index; ARGV: 1 limit, 2 cursor millis ('' = first page), 3 cursor id,
--       4 user hash key prefix, 5... the hash fields to return
-- Returns {total, user1 {value of ARGV[5], value of ARGV[6], ...}, ...} with up to limit + 1 users (the extra one
-- tells the caller another page exists).
local limit = tonumber(ARGV[1])
local ids
if ARGV[2] == '' then
  ids = redis.call('ZRANGE', KEYS[1], 0, limit)
else
  -- Members sharing the cursor's score are ordered bytewise; skip those up to the cursor id.
  -- Bytewise by hand: Lua's string comparison follows the server's locale.
  local function not_after(a, b)
    local n = math.min(#a, #b)
    for i = 1, n do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then return x < y end
    end
    return #a <= #b
  end
  local skip = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[2], 'BYSCORE')) do
    if not_after(member, ARGV[3]) then skip = skip + 1 end
  end
  ids = redis.call('ZRANGE', KEYS[1], ARGV[2], '+inf', 'BYSCORE', 'LIMIT', skip, limit + 1)
end
local result = {redis.call('ZCARD', KEYS[1])}
for _, id in ipairs(ids) do
  -- HMGET of the fields the caller reads (ARGV[5..]), in its order: a missing field is
  -- false (nil in the reply); a user whose hash is gone has every field missing.
  local fields = redis.call('HMGET', ARGV[4] .. id, unpack(ARGV, 5))
  for i = 1, #fields do
    if fields[i] then
      table.insert(result, fields)
      break
    end
  end
end
return result
