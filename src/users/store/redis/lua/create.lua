-- Creates a user unless its email is taken. One script, so two concurrent creates with the
-- same email cannot both pass the check (Redis runs scripts one at a time).
-- KEYS: 1 user hash, 2 creation index (zset), 3 email index key
-- ARGV: 1 id, 2 name, 3 email, 4 role, 5 createdAt, 6 updatedAt, 7 created millis, 8 email key
-- Returns 1 when created, 0 when the email is taken, -1 when the id exists.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
redis.call('SET', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'email', ARGV[3], 'role', ARGV[4],
  'createdAt', ARGV[5], 'updatedAt', ARGV[6], 'emailKey', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
return 1
