#!lua flags=no-writes
-- Read only: the pool-wide picture in one round trip (no SCAN: parked lists are indexed).
-- KEYS[1] due   KEYS[2] held   KEYS[3] dlq   KEYS[4] circuits   KEYS[5] parked   KEYS[6] stats
-- derived: park:<tenant> (list)
-- ARGV[1] prefix
-- Returns {now, waiting, due now, held, dead letters, parked, circuits (flat hash), stats
-- (flat hash)}.
local now = now_ms()
local parked = 0
for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  parked = parked + redis.call('LLEN', P .. 'park:' .. tenant)
end
return {now, redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[1], '-inf', now),
        redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]), parked,
        redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[6])}
