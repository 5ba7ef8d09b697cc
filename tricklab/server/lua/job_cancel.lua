-- include: job_lib
-- Cancel: a queued job at once; a running one at its worker's next log point.
-- ARGV: id, now, maxlen
-- -> the status after the call: 'cancelled' (was queued), 'cancelling' (running), the
--    terminal status it already had, or 'missing'
local id = ARGV[1]
local k = KEYS[1]
local st = redis.call('HGET', k, 'status')
if not st then return 'missing' end
if st == 'queued' then
  redis.call('HSET', k, 'status', 'cancelled', 'finished_at', ARGV[2], 'cancel_requested', '1')
  move(id, st, 'cancelled')
  emit('status', status_event(id, 'cancelled'), ARGV[3])
  return 'cancelled'
end
if st == 'running' then
  if redis.call('HGET', k, 'cancel_requested') ~= '1' then
    redis.call('HSET', k, 'cancel_requested', '1')
    emit('cancel_requested', cjson.encode({id = id}), ARGV[3])
  end
  return 'cancelling'
end
return st
