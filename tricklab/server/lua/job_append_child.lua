-- Append a fork to its parent's lineage.children, atomically (forks of one job may race).
-- KEYS: 1 the parent's job hash; ARGV: 1 the child as JSON ({id, from_epoch})
-- -> the number of children the parent has now
local raw = redis.call('HGET', KEYS[1], 'lineage')
local lin = {}
if raw and raw ~= '' and raw ~= 'null' then lin = cjson.decode(raw) end
if type(lin.children) ~= 'table' then lin.children = {} end
table.insert(lin.children, cjson.decode(ARGV[1]))
redis.call('HSET', KEYS[1], 'lineage', cjson.encode(lin))
return #lin.children
