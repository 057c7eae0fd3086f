#!lua
-- Move: held -> waiting, for every lease past its deadline: its worker died, froze or lost
-- Redis. The attempt stays charged: its call may have gone out.
-- KEYS[1] held (zset)   KEYS[2] due (zset)   KEYS[3] stats (hash)
-- derived: e:<member> (hash)
-- ARGV[1] prefix, [2] most events
-- Returns how many events went back.
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(expired) do
  redis.call('ZREM', KEYS[1], m)
  local key = rec(m)
  if redis.call('HGET', key, 's') == 'held' then
    redis.call('HDEL', key, 'l')
    redis.call('HSET', key, 's', 'waiting', 't', now)
    redis.call('ZADD', KEYS[2], now, m)
  end
end
if #expired > 0 then redis.call('HINCRBY', KEYS[3], 'leases_expired', #expired) end
return #expired
