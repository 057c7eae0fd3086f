#!lua
-- Move: dead_letter -> waiting, by an operator, with a fresh retry budget. Only an event still
-- dead-lettered moves, so concurrent replays of one event enqueue it once.
-- KEYS[1] dlq (zset)   KEYS[2] due (zset)   KEYS[3] stats (hash)
-- derived: e:<member> (hash)
-- ARGV[1] prefix, then members
-- Returns the members replayed.
local now = now_ms()
local out = {}
for i = 2, #ARGV do
  local m = ARGV[i]
  local key = rec(m)
  if redis.call('HGET', key, 's') == 'dead_letter' then
    redis.call('HSET', key, 's', 'waiting', 'c', 0, 't', now)
    redis.call('HINCRBY', key, 'p', 1)
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[2], now, m)
    redis.call('HINCRBY', KEYS[3], 'replayed:' .. tenant_of(m), 1)
    out[#out + 1] = m
  end
end
return out
