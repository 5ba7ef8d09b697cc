-- Count a finished job's run time into its status's duration histogram.
-- KEYS: 1 the job hash, 2..6 the histogram hash per status (STATUSES order)
-- ARGV: the bucket upper bounds (le), ascending
-- -> 1 OBSERVED, 0 SKIPPED (no start or finish time)
local INDEX = {queued = 2, running = 3, succeeded = 4, failed = 5, cancelled = 6}
local h = redis.call('HMGET', KEYS[1], 'status', 'started_at', 'finished_at')
local st, t0, t1 = h[1], tonumber(h[2]), tonumber(h[3])
if not st or not t0 or not t1 or not INDEX[st] then return 0 end
local d = math.max(0, t1 - t0)
local hk = KEYS[INDEX[st]]
for i = 1, #ARGV do
  if d <= tonumber(ARGV[i]) then redis.call('HINCRBY', hk, ARGV[i], 1) end
end
redis.call('HINCRBY', hk, '+Inf', 1)
redis.call('HINCRBY', hk, 'count', 1)
redis.call('HINCRBYFLOAT', hk, 'sum', tostring(d))
return 1
