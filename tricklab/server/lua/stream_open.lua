-- Take one of a caller's open-stream slots, by Redis's clock (api/stream_hub.py).
-- KEYS: 1 the caller's open-streams zset (member: stream token, score: lease end in s)
-- ARGV: 1 stream token, 2 cap (most open streams), 3 lease seconds
-- -> {1, streams open now} OPENED, or {0, streams open now} FULL
-- Leases that ended (an API process that died holding them) are dropped first.
local cap, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= cap then return {0, n} end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return {1, n + 1}
