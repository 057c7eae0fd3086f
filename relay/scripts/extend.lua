#!lua flags=allow-oom
-- Heartbeat: pushes the lease deadline of every event this worker still holds.
-- allow-oom: it moves no data, and a heartbeat refused under memory pressure would let live
-- leases lapse and their events go out twice.
-- KEYS[1] held (zset)
-- derived: e:<member> (hash, read only)
-- ARGV[1] prefix, [2] lease ms, then pairs: member, token
-- Returns {now, lost}: the members whose lease the token no longer holds.
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV, 2 do
  local m = ARGV[i]
  if redis.call('HGET', rec(m), 'l') == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', 'GT', deadline, m)
  else
    lost[#lost + 1] = m
  end
end
return {now, lost}
