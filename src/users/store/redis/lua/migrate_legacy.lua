-- Moves the previous service's JSON array (key `users`) into the per-user layout in one
-- atomic step: Redis applies a script whole or not at all (AOF records its effects as one
-- transaction), so a crash cannot leave a half-migrated state, and the renamed blob makes a
-- second run a no-op.
-- KEYS: 1 legacy key, 2 backup key, 3 creation index
-- ARGV: 1 the legacy value the caller parsed (the script refuses if it changed since),
--       2 user key prefix, 3 email index prefix, then 8 values per record:
--       id, name, email, role, createdAt, updatedAt, created millis, email key
-- Returns {migrated, skipped_existing_id, unindexed_duplicate_email} or {-1} if the legacy
-- value changed under us, {-2} if it is already gone.
local current = redis.call('GET', KEYS[1])
if not current then
  return {-2}
end
if current ~= ARGV[1] then
  return {-1}
end
local migrated, existing, duplicates = 0, 0, 0
for i = 4, #ARGV, 8 do
  local id = ARGV[i]
  local user_key = ARGV[2] .. id
  if redis.call('EXISTS', user_key) == 1 then
    existing = existing + 1
  else
    redis.call('HSET', user_key, 'id', id, 'name', ARGV[i + 1], 'email', ARGV[i + 2],
      'role', ARGV[i + 3], 'createdAt', ARGV[i + 4], 'updatedAt', ARGV[i + 5],
      'emailKey', ARGV[i + 7])
    redis.call('ZADD', KEYS[3], ARGV[i + 6], id)
    if redis.call('SET', ARGV[3] .. ARGV[i + 7], id, 'NX') == false then
      duplicates = duplicates + 1
    end
    migrated = migrated + 1
  end
end
redis.call('RENAME', KEYS[1], KEYS[2])
return {migrated, existing, duplicates}
