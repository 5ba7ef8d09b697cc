-- Renew the leases of a caller's streams that are still open (api/stream_hub.py).
-- KEYS: 1 the caller's open-streams zset; ARGV: 1 lease seconds, 2.. stream tokens
-- -> the number renewed. XX: a stream closed meanwhile (ZREM) is never brought back.
local lease = tonumber(ARGV[1])
local t = redis.call('TIME')
local until_s = tonumber(t[1]) + tonumber(t[2]) / 1e6 + lease
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', until_s, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return n
