-- Applies a partial update; the email index moves with the email in the same step.
-- KEYS: 1 user hash, 2 new email index key ('' when the email does not change)
-- ARGV: 1 id, 2 name, 3 email, 4 role ('' = unchanged), 5 updatedAt, 6 new email key,
--       7 email index key prefix (to find the old index key from the stored emailKey),
--       8... the hash fields to return
-- Returns {'ok', {value of ARGV[8], value of ARGV[9], ...}}, {'not_found'} or {'email_taken'}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
if ARGV[3] ~= '' then
  local owner = redis.call('GET', KEYS[2])
  if owner and owner ~= ARGV[1] then
    return {'email_taken'}
  end
  local old_key = ARGV[7] .. redis.call('HGET', KEYS[1], 'emailKey')
  if old_key ~= KEYS[2] then
    -- Only drop the old index entry if it is ours (migrated duplicates may share one).
    if redis.call('GET', old_key) == ARGV[1] then
      redis.call('DEL', old_key)
    end
    redis.call('SET', KEYS[2], ARGV[1])
  end
  redis.call('HSET', KEYS[1], 'email', ARGV[3], 'emailKey', ARGV[6])
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'name', ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'role', ARGV[4])
end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[5])
-- The updated user as the caller reads every user: HMGET of its fields, in its order.
return {'ok', redis.call('HMGET', KEYS[1], unpack(ARGV, 8))}
