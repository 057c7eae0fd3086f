#!lua
-- Move: (new) -> waiting. Accepts events, deduping on (tenant, event_id): the record is both
-- the dedupe key and the event's state, written in the same step as the queue entry.
-- KEYS[1] due (zset)   KEYS[2] stats (hash)
-- derived: e:<member> (hash, created)
-- ARGV[1] prefix, then pairs: member, message (JSON of the event's fields)
-- Returns one integer per event: 1 accepted, 0 already known.
local now = now_ms()
local out = {}
for i = 2, #ARGV, 2 do
  local m = ARGV[i]
  local key = rec(m)
  if redis.call('EXISTS', key) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', key, 's', 'waiting', 'm', ARGV[i + 1], 't0', now, 't', now)
    redis.call('ZADD', KEYS[1], now, m)
    redis.call('HINCRBY', KEYS[2], 'accepted:' .. tenant_of(m), 1)
    out[#out + 1] = 1
  end
end
return out
