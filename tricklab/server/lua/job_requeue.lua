-- include: job_lib
-- Running -> queued: the attempt was preempted, or (attempt '') its lease expired.
-- ARGV: id, attempt ('' = any attempt whose lease expired before now), now, reason, maxlen
-- -> 1 REQUEUED, 2 CANCELLED (a cancel was pending), 0 NOT_APPLICABLE
local id = ARGV[1]
local k = KEYS[1]
local st = redis.call('HGET', k, 'status')
if st ~= 'running' then return 0 end
if ARGV[2] ~= '' then
  if redis.call('HGET', k, 'attempts') ~= ARGV[2] then return 0 end
elseif (tonumber(redis.call('HGET', k, 'lease_until') or '0') or 0) > tonumber(ARGV[3]) then
  return 0
end
if redis.call('HGET', k, 'cancel_requested') == '1' then
  redis.call('HSET', k, 'status', 'cancelled', 'finished_at', ARGV[3], 'worker', '', 'lease_until', '')
  move(id, st, 'cancelled')
  emit('status', status_event(id, 'cancelled'), ARGV[5])
  return 2
end
redis.call('HSET', k, 'status', 'queued', 'worker', '', 'lease_until', '')
move(id, st, 'queued')
emit('status', status_event(id, 'queued', {reason = ARGV[4]}), ARGV[5])
return 1
