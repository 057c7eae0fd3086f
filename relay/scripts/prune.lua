#!lua
-- Move: dead_letter -> gone, for dead letters older than the age limit (RELAY_DLQ_MAX_AGE,
-- off by default): the record, its history, its index entry; counted, never silent.
-- KEYS[1] dlq (zset)   KEYS[2] stats (hash)
-- derived: e:<member> (hash), h:<member> (list)
-- ARGV[1] prefix, [2] age limit ms, [3] most events
-- Returns how many were dropped.
local now = now_ms()
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0,
                       tonumber(ARGV[3]))
for _, m in ipairs(old) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('DEL', rec(m), hist(m))
end
if #old > 0 then redis.call('HINCRBY', KEYS[2], 'dead_letters_expired', #old) end
return #old
