-- Release a lock or a claim only while it still holds our token (compare-and-delete).
-- KEYS: 1 the key; ARGV: 1 the value we wrote
-- -> 1 DELETED, 0 NOT_OURS (expired, or taken by someone else since)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
