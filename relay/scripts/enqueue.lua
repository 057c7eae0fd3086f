#!lua
-- Move: (new) -> waiting. Accepts events, deduping on (tenant, event_id) against live records
-- and the ended ones of the dedupe window; the record is written in the same step as the
-- queue entry. Refuses the whole call, writing nothing, when a tenant is not configured.
-- KEYS[1] due (zset)   KEYS[2] stats (hash)   KEYS[3] tenants (set)
-- derived: e:<member> (hash, created), done:<bucket> (hash, read)
-- ARGV[1] prefix, [2] bucket span ms, [3] buckets in the window, then pairs: member, message
-- (JSON array of the event's fields)
-- Returns one integer per event: 1 accepted, 0 already known; or {-1, tenant} when refused.
local now = now_ms()
local span, windows = tonumber(ARGV[2]), tonumber(ARGV[3])
local checked = {}
for i = 4, #ARGV, 2 do
  local tenant = tenant_of(ARGV[i])
  if not checked[tenant] then
    if redis.call('SISMEMBER', KEYS[3], tenant) == 0
       and (tenant ~= 'default' or redis.call('SCARD', KEYS[3]) > 0) then
      return {-1, tenant}  -- until a worker registers tenants, only 'default' is served
    end
    checked[tenant] = true
  end
end
local out, queued = {}, {}
local counts, count = tally()
for i = 4, #ARGV, 2 do
  local m = ARGV[i]
  local key = rec(m)
  if redis.call('EXISTS', key) == 1 or ended(m, now, span, windows) then
    out[#out + 1] = 0
  else
    redis.call('HSET', key, 's', 'waiting', 'm', ARGV[i + 1], 't0', now, 't', now)
    queued[#queued + 1] = now
    queued[#queued + 1] = m
    count('accepted:' .. tenant_of(m))
    out[#out + 1] = 1
  end
end
each_chunk(queued, function(...) redis.call('ZADD', KEYS[1], ...) end)
flush(KEYS[2], counts)
return out
