-- Deletes a user, its index entry and (if it owns it) its email key, together.
-- KEYS: 1 user hash, 2 creation index; ARGV: 1 id, 2 email index key prefix
-- Returns 1 when deleted, 0 when there was no such user.
local email_key = redis.call('HGET', KEYS[1], 'emailKey')
if not email_key then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local index_key = ARGV[2] .. email_key
if redis.call('GET', index_key) == ARGV[1] then
  redis.call('DEL', index_key)
end
return 1
