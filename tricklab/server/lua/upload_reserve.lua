-- Reserve storage quota for one of a tenant's tus uploads, atomically with the sum of what its
-- other uploads hold (api/tus_quota.py), so that two requests cannot both take the same bytes.
-- KEYS: 1 the tenant's uploads set, 2 the expiry zset, 3 the upload's record, 4 its lock,
--       then the record and the lock of each id in ARGV[8 .. 7+n] (the set as the caller read it)
-- ARGV: 1 mode: 'create' (write the record of a new upload of `bytes` bytes), 'length' (set a
--       deferred upload's length to `bytes`), 'grant' (a PATCH of a deferred upload may add
--       up to `bytes`: reserve what fits of them) or 'count' (write nothing: what the uploads
--       other than the given id hold), 2 the upload id, 3 the caller's lock token
--       ('length', 'grant'), 4 the quota left (max_dataset_bytes_total - the stored datasets'
--       bytes), 5 bytes, 6 now (unix s), 7 n, 8 .. 7+n the ids, then ('create') the record's
--       fields and values, expires_at among them
-- -> {'retry'} STALE (the set is not the one read: read it again); {'lost'} NOT_OURS (no such
--    record, or the lock is no longer the caller's); {'over', held} OVER_QUOTA (nothing
--    written); {'ok', held, room, granted} RESERVED. held: what the other uploads hold; room:
--    quota left - held ('grant': also - the upload's own offset).
-- An upload holds its Upload-Length or, while that is deferred, its offset, and while its lock
-- lives the `reserve_to` offset its PATCH was granted: a grant lapses with the lock's TTL when
-- the process writing died. Expired uploads that no PATCH holds count for nothing (the caller's
-- reads remove them).
local mode, id, token = ARGV[1], ARGV[2], ARGV[3]
local left, want, now, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('SCARD', KEYS[1]) ~= n then return {'retry'} end
local held = 0
for i = 1, n do
  local other = ARGV[7 + i]
  if redis.call('SISMEMBER', KEYS[1], other) == 0 then return {'retry'} end
  if other ~= id then
    local h = redis.call('HMGET', KEYS[3 + 2 * i], 'length', 'offset', 'expires_at', 'reserve_to')
    local locked = redis.call('EXISTS', KEYS[4 + 2 * i]) == 1
    if h[3] and (locked or tonumber(h[3]) > now) then
      if h[1] then
        held = held + tonumber(h[1])
      else
        local bytes = tonumber(h[2]) or 0
        if locked and h[4] then bytes = math.max(bytes, tonumber(h[4])) end
        held = held + bytes
      end
    end
  end
end
local room = left - held
if mode == 'count' then return {'ok', held, room, 0} end
if mode == 'create' then
  if want > room then return {'over', held} end
  local fields = {}
  for i = 8 + n, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[3], unpack(fields))
  redis.call('SADD', KEYS[1], id)
  redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[3], 'expires_at'), id)
  return {'ok', held, room, want}
end
if redis.call('GET', KEYS[4]) ~= token or redis.call('EXISTS', KEYS[3]) == 0 then
  return {'lost'}
end
if mode == 'length' then
  if want > room then return {'over', held} end
  redis.call('HSET', KEYS[3], 'length', want)
  return {'ok', held, room, want}
end
local offset = tonumber(redis.call('HGET', KEYS[3], 'offset')) or 0
room = room - offset
local granted = math.max(0, math.min(want, room))
redis.call('HSET', KEYS[3], 'reserve_to', offset + granted)
return {'ok', held, room, granted}
