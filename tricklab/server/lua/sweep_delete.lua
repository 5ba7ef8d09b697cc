-- Delete a sweep's own keys and take it out of its tenant's index and the open list.
-- Its child jobs are deleted before, one by one (lua/job_delete.lua).
-- KEYS: 1 the sweep hash, 2 its payload hash, 3 its scheduler lock, 4 its dirty flag,
--       5 the open-sweeps hash, 6 the tenant's sweep index
-- ARGV: sweep id, tenant (the caller's; '' = any)
-- -> 'deleted'; 'missing' (no such sweep, or another tenant's)
local id, tenant = ARGV[1], ARGV[2]
local owner = redis.call('HGET', KEYS[1], 'tenant')
if not owner or (tenant ~= '' and owner ~= tenant) then return 'missing' end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[5], id)
redis.call('ZREM', KEYS[6], id)
return 'deleted'
