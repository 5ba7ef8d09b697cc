-- What a SeriesWriter must know to append without reads, for the series it names.
-- KEYS: raw, summary, raw, summary, ... (one pair per series name, in the caller's order)
-- ARGV: the block size (raw records per summary)
-- -> per series: raw record count, summary byte length, and the raw records of the
--    last (partial) block, or the last record when the last block is complete
local out = {}
local B = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local n = math.floor(redis.call('STRLEN', KEYS[i]) / 12)
  local start = math.floor(n / B) * B
  if start == n and n > 0 then start = n - 1 end
  local tail = ''
  if n > 0 then tail = redis.call('GETRANGE', KEYS[i], start * 12, n * 12 - 1) end
  out[#out + 1] = n
  out[#out + 1] = redis.call('STRLEN', KEYS[i + 1])
  out[#out + 1] = tail
end
return out
