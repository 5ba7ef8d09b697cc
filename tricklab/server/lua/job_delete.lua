-- Delete a finished job's every Redis key and take it out of every index, atomically.
-- KEYS: 1 the job hash, 2 the reconciler's sightings hash, 3 the recently-deleted zset
--       (tricklab.server.retention re-deletes late writes of these ids),
--       4 .. 3+n the indexes that may hold the id (zsets or sets: the tenant's per-status
--       and all-jobs indexes, its reuse index, its tag sets), then every key to drop
--       (event stream, log stream, series names and each series' raw and summary).
-- ARGV: id, n (how many index keys), now (unix s), tenant (the caller's; '' = any),
--       force ('1': no checks at all: the retention round clearing a late write's leftovers)
-- -> 'deleted'; 'missing' (no such job, or another tenant's); or the status of a job that
--    is not finished (queued, running, ...): nothing is deleted then.
local id, n, now, tenant, force = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
if force ~= '1' then
  local rec = redis.call('HMGET', KEYS[1], 'tenant', 'status')
  if not rec[1] and not rec[2] then return 'missing' end
  if tenant ~= '' and rec[1] ~= tenant then return 'missing' end
  local st = rec[2]
  if not (st == 'succeeded' or st == 'failed' or st == 'cancelled' or st == 'stopped_early') then
    return st or 'unknown'
  end
end
for i = 4, 3 + n do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind == 'zset' then
    redis.call('ZREM', KEYS[i], id)
  elseif kind == 'set' then
    redis.call('SREM', KEYS[i], id)
  end
end
redis.call('HDEL', KEYS[2], id)
local drop = {KEYS[1]}
for i = 4 + n, #KEYS do drop[#drop + 1] = KEYS[i] end
redis.call('UNLINK', unpack(drop))
redis.call('ZADD', KEYS[3], now, id)
return 'deleted'
