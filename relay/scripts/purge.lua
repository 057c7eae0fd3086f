#!lua
-- Move: dead_letter -> gone, by an operator: the record, its history and its index entry.
-- KEYS[1] dlq (zset)   KEYS[2] stats (hash)
-- derived: e:<member> (hash), h:<member> (list)
-- ARGV[1] prefix, then members
-- Returns how many were purged (only events still dead-lettered are).
local n = 0
for i = 2, #ARGV do
  local m = ARGV[i]
  if redis.call('HGET', rec(m), 's') == 'dead_letter' then
    redis.call('DEL', rec(m), hist(m))
    redis.call('ZREM', KEYS[1], m)
    redis.call('HINCRBY', KEYS[2], 'purged:' .. tenant_of(m), 1)
    n = n + 1
  end
end
return n
