-- include: job_lib
-- Renew a running attempt's lease and write its progress (KEYS 1 and 2 only).
-- ARGV: attempt, lease_until, progress, metrics, best ('' = unchanged), maxlen
-- -> 1 GO_ON, 2 CANCEL (a cancel was requested), -1 FENCED (another attempt owns the job)
local k = KEYS[1]
if redis.call('HGET', k, 'status') ~= 'running' or redis.call('HGET', k, 'attempts') ~= ARGV[1] then
  return -1
end
redis.call('HSET', k, 'lease_until', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', k, 'progress', ARGV[3])
  emit('progress', ARGV[3], ARGV[6])
end
if ARGV[4] ~= '' then
  redis.call('HSET', k, 'metrics', ARGV[4])
  emit('metrics', ARGV[4], ARGV[6])
end
if ARGV[5] ~= '' then redis.call('HSET', k, 'best', ARGV[5]) end
if redis.call('HGET', k, 'cancel_requested') == '1' then return 2 end
return 1
