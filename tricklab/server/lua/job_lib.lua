-- Shared by the job status-machine scripts (prepended by tricklab.server.scripts).
-- KEYS: 1 the job hash, 2 its event stream, 3 the all-jobs status stream,
--       4..8 the tenant's job index per status (queued, running, succeeded, failed,
--       cancelled: tricklab.contract.STATUSES order), 9 the tenant's index of all jobs.
-- Scripts that change no status (heartbeat) get only KEYS 1 and 2.
local INDEX = {queued = 4, running = 5, succeeded = 6, failed = 7, cancelled = 8}
local function move(id, from, to)
  redis.call('ZREM', KEYS[INDEX[from]], id)
  redis.call('ZADD', KEYS[INDEX[to]], 0, id)
end
local function emit(kind, data, maxlen)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'type', kind, 'data', data)
  if kind == 'status' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'type', kind, 'data', data)
  end
end
local function status_event(id, status, extra)
  local ev = {id = id, status = status, attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts'))}
  if extra then for k, v in pairs(extra) do ev[k] = v end end
  return cjson.encode(ev)
end
