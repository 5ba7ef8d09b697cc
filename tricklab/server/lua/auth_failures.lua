-- Failed-authentication token buckets (api/auth.py), by Redis's clock: each failure
-- takes a token; tokens come back at `rate` a second up to `burst`.
-- KEYS: 1.. the buckets (hashes {tokens, ts}), e.g. the client address's and the key id's
-- ARGV: 1 "peek" or "take", then per key: rate per second, burst
-- -> per key, the seconds until it allows an attempt again (as a string; "0" = allowed now).
--    peek changes nothing; take spends one token of each bucket (never below zero).
local take = ARGV[1] == 'take'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local out = {}
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local h = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(h[1]) or burst
  local ts = tonumber(h[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if take then
    tokens = math.max(0, tokens - 1)
    redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
    redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  end
  local wait = 0
  if tokens < 1 then wait = (1 - tokens) / rate end
  out[i] = tostring(wait)
end
return out
