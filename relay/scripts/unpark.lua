#!lua
-- Move: parked -> waiting. Behind a closed circuit every parked event goes back, a batch per
-- call; behind a half-open one the oldest goes back as the tenant's probe (so the probe
-- rotates: a failed probe is parked again at the tail).
-- KEYS[1] circuits (hash)   KEYS[2] parked (set)   KEYS[3] due (zset)
-- derived: park:<tenant> (list), e:<member> (hash)
-- ARGV[1] prefix, [2] most events per tenant, [3] probe ms
-- Returns how many events went back.
local now = now_ms()
local moved = 0
for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local pk = P .. 'park:' .. tenant
  local raw = redis.call('HGET', KEYS[1], tenant)
  local c = raw and cjson.decode(raw)
  local n = 0
  if not c then
    n = tonumber(ARGV[2])
  elseif now >= c.open_until and not probe_busy(c, now) then
    n = 1
  end
  for _ = 1, n do
    local m = redis.call('LPOP', pk)
    if not m then break end
    local key = rec(m)
    if redis.call('HGET', key, 's') == 'parked' then
      if c then
        c.probe, c.probe_until = m, now + tonumber(ARGV[3])
        redis.call('HSET', KEYS[1], tenant, cjson.encode(c))
      end
      redis.call('HSET', key, 's', 'waiting', 't', now)
      redis.call('ZADD', KEYS[3], now, m)
      moved = moved + 1
    end
  end
  if redis.call('LLEN', pk) == 0 then redis.call('SREM', KEYS[2], tenant) end
end
return moved
