-- include: job_lib
-- Set a terminal status, fenced on the attempt number.
-- ARGV: id, attempt, status, now, error (JSON), result (JSON, '' = none), maxlen
-- -> 1 FINISHED, 0 FENCED
local id = ARGV[1]
local k = KEYS[1]
local st = redis.call('HGET', k, 'status')
if st ~= 'running' or redis.call('HGET', k, 'attempts') ~= ARGV[2] then return 0 end
redis.call('HSET', k, 'status', ARGV[3], 'finished_at', ARGV[4], 'error', ARGV[5], 'worker', '',
  'lease_until', '')
if ARGV[6] ~= '' then redis.call('HSET', k, 'result', ARGV[6]) end
move(id, st, ARGV[3])
emit('status', status_event(id, ARGV[3], {error = cjson.decode(ARGV[5])}), ARGV[7])
return 1
