-- Reserve the bytes a new dataset will store, atomically with the sum of what the tenant's
-- stored datasets take and what its other datasets being written have reserved
-- (api/uploads.DatasetRepo.reserve), so that two uploads cannot both pass on the same free bytes.
-- KEYS: 1 the tenant's datasets set, 2 the tenant's pending-reservations hash
--       (dataset id -> "bytes expires_at"), then the record of each id in ARGV[7 .. 6+n]
--       (the set as the caller read it)
-- ARGV: 1 the new dataset's id, 2 its bytes, 3 the limit (max_dataset_bytes_total),
--       4 now (unix s), 5 the reservation's lifetime (s), 6 n, 7 .. 6+n the ids
-- -> {'retry'} STALE (the set is not the one read: read it again); {'over', used, pending}
--    OVER_QUOTA (nothing written); {'ok', used, pending} RESERVED. used: the stored datasets'
--    bytes; pending: the other reservations'. Expired reservations (the API process writing
--    died) are dropped here.
local id, want, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, ttl, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('SCARD', KEYS[1]) ~= n then return {'retry'} end
local used = 0
for i = 1, n do
  if redis.call('SISMEMBER', KEYS[1], ARGV[6 + i]) == 0 then return {'retry'} end
  local meta = redis.call('HGET', KEYS[2 + i], 'meta')
  if meta then
    local d = cjson.decode(meta)
    local bytes = d['stored_bytes']
    if type(bytes) ~= 'number' then bytes = d['bytes'] end
    if type(bytes) == 'number' then used = used + bytes end
  end
end
local pending = 0
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  local bytes, expires = string.match(entries[i + 1], '^(%S+) (%S+)$')
  if not expires or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[2], entries[i])
  elseif entries[i] ~= id then
    pending = pending + tonumber(bytes)
  end
end
if used + pending + want > limit then return {'over', used, pending} end
redis.call('HSET', KEYS[2], id, want .. ' ' .. (now + ttl))
return {'ok', used, pending}
