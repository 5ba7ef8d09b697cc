-- include: job_lib
-- Write a queued job record, unless the tenant is at its quota of active jobs.
-- ARGV: id, max_active (0 = no limit), maxlen, the queued event, then field/value pairs
-- -> {1} CREATED; {0, active} OVER_QUOTA (the tenant already has max_active queued + running)
local id, max_active = ARGV[1], tonumber(ARGV[2])
if max_active > 0 then
  local active = redis.call('ZCARD', KEYS[INDEX.queued]) + redis.call('ZCARD', KEYS[INDEX.running])
  if active >= max_active then return {0, active} end
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[9], 0, id)
redis.call('ZADD', KEYS[INDEX.queued], 0, id)
emit('status', ARGV[4], ARGV[3])
return {1}
