-- Set one field of a job hash, only if the job still exists (never makes a stray hash).
-- KEYS: 1 the job hash. ARGV: field, value
-- -> 1 set; 0 no such job
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
