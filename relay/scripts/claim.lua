#!lua
-- Moves: waiting -> held (a lease with a fresh fencing token), waiting -> parked (its tenant's
-- circuit is open), waiting -> waiting later (its rate-limit slot lies past the horizon).
-- KEYS[1] due (zset)   KEYS[2] held (zset)   KEYS[3] seq (string)   KEYS[4] circuits (hash)
-- KEYS[5] parked (set)   KEYS[6] stats (hash)
-- derived: e:<member> (hash), park:<tenant> (list), rate:<tenant> (string, PX)
-- ARGV[1] prefix, [2] most events, [3] lease ms, [4] probe ms, [5] rate interval ms (0: no
-- limit), [6] rate burst ms, [7] rate horizon ms
-- Returns {now, claims}; a claim is {member, token, message, attempts, charged, accepted at,
-- probe (0/1), delay ms}. Claiming charges the attempt: a call may go out from here on.
local now = now_ms()
local lease, probe_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local interval, burst, horizon = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local circuits, out = {}, {}

local function circuit(tenant)
  local c = circuits[tenant]
  if c == nil then
    local raw = redis.call('HGET', KEYS[4], tenant)
    c = raw and cjson.decode(raw) or false
    circuits[tenant] = c
  end
  return c
end

-- GCRA: ms until the tenant's next slot, reserved; or minus the ms until a slot is within the
-- horizon, not reserved.
local function slot(tenant)
  if interval <= 0 then return 0 end
  local key = P .. 'rate:' .. tenant
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local wait = tat - burst - now
  if wait < 0 then wait = 0 end
  if wait > horizon then return -(wait - horizon) end
  redis.call('SET', key, tat + interval, 'PX', math.ceil(tat + interval - now) + 1000)
  return wait
end

local go, leave = {}, {}  -- members to lease; members leaving `due`
local orphans = 0
for _, m in ipairs(due) do
  local key = rec(m)
  local tenant = tenant_of(m)
  local r = redis.call('HMGET', key, 's', 'm', 't0', 'a', 'c')
  if r[1] ~= 'waiting' then
    -- an index entry without a waiting record: never expected; drop it, count it
    leave[#leave + 1] = m
    orphans = orphans + 1
  else
    local c = circuit(tenant)
    local park = false
    if c then
      park = now < c.open_until or (c.probe ~= m and probe_busy(c, now))
    end
    if park then
      leave[#leave + 1] = m
      redis.call('RPUSH', P .. 'park:' .. tenant, m)
      redis.call('SADD', KEYS[5], tenant)
      redis.call('HSET', key, 's', 'parked', 't', now)
    else
      local delay = slot(tenant)
      if delay < 0 then
        redis.call('ZADD', KEYS[1], now - delay, m)
      else
        local probe = 0
        if c then
          probe = 1
          c.probe = m
          c.probe_until = now + delay + probe_ms
          redis.call('HSET', KEYS[4], tenant, cjson.encode(c))
        end
        go[#go + 1] = {m, key, r, probe, delay}
      end
    end
  end
end
local leases = {}
if #go > 0 then
  local first = redis.call('INCRBY', KEYS[3], #go) - #go
  for i, g in ipairs(go) do
    local m, key, r, probe, delay = g[1], g[2], g[3], g[4], g[5]
    local token = first + i
    local attempts, charged = (tonumber(r[4]) or 0) + 1, (tonumber(r[5]) or 0) + 1
    redis.call('HSET', key, 's', 'held', 'l', token, 't', now, 'a', attempts, 'c', charged)
    leave[#leave + 1] = m
    leases[#leases + 1] = now + delay + lease
    leases[#leases + 1] = m
    out[#out + 1] = {m, token, r[2] or '', attempts, charged, r[3] or now, probe,
                     math.ceil(delay)}
  end
end
each_chunk(leave, function(...) redis.call('ZREM', KEYS[1], ...) end)
each_chunk(leases, function(...) redis.call('ZADD', KEYS[2], ...) end)
if orphans > 0 then redis.call('HINCRBY', KEYS[6], 'orphans', orphans) end
return {now, out}
