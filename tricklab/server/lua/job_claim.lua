-- include: job_lib
-- Take a queued job, or a running one whose lease expired (its holder died silently).
-- ARGV: id, worker, now, lease_until, max_attempts, maxlen
-- -> {attempt} CLAIMED; {0, status} REFUSED (not claimable, or failed past max_attempts);
--    {-1} MISSING
local id, worker, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local k = KEYS[1]
local st = redis.call('HGET', k, 'status')
if not st then return {-1} end
if st == 'running' then
  local lease = tonumber(redis.call('HGET', k, 'lease_until') or '0') or 0
  if lease > now then return {0, 'running'} end
  -- the holder died without a word: end its attempt in the event stream first
  emit('status', status_event(id, 'queued', {reason = 'lease expired'}), ARGV[6])
elseif st ~= 'queued' then
  return {0, st}
end
local attempts = redis.call('HINCRBY', k, 'attempts', 1)
if attempts > tonumber(ARGV[5]) then
  local err = cjson.encode({type = 'crashed', message = 'the job crashed its worker ' .. (attempts - 1) ..
    ' times; not retrying (max_restarts)'})
  redis.call('HINCRBY', k, 'attempts', -1)
  redis.call('HSET', k, 'status', 'failed', 'finished_at', ARGV[3], 'error', err, 'worker', '')
  move(id, st, 'failed')
  emit('status', status_event(id, 'failed'), ARGV[6])
  return {0, 'failed'}
end
redis.call('HSET', k, 'status', 'running', 'worker', worker, 'lease_until', ARGV[4])
if redis.call('HGET', k, 'started_at') == '' then redis.call('HSET', k, 'started_at', ARGV[3]) end
move(id, st, 'running')
emit('status', status_event(id, 'running', {worker = worker}), ARGV[6])
return {attempts}
