-- Helpers every script shares. relay/scripts/__init__.py puts this text right after each
-- script's shebang line. ARGV[1] is always the key prefix (e.g. 'relay:{main}:'): per-event
-- keys derive from it exactly as relay/keys.py builds them, and share its hash tag.
local P = ARGV[1]

-- Redis server time in ms: the one clock every process compares against.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function rec(m) return P .. 'e:' .. m end
local function hist(m) return P .. 'h:' .. m end
local function tenant_of(m) return string.match(m, '^([^/]*)/') end

-- Ended events (delivered, rejected) are kept as one field each in a hash per time bucket,
-- for the dedupe window: far smaller than a key per event.
local function done_key(bucket) return P .. 'done:' .. bucket end

-- The outcome `m` ended with, if within the last `windows` buckets of `span_ms`, else false.
local function ended(m, now, span_ms, windows)
  local bucket = math.floor(now / span_ms)
  for i = 0, windows do
    local v = redis.call('HGET', done_key(bucket - i), m)
    if v then return v end
  end
  return false
end

-- Whether a tenant's half-open circuit still gives its turn to its probe: the probe's time has
-- not run out, or its call is still in hand (a lease kept alive by heartbeats can outlast
-- `probe_until`, e.g. on a saturated worker): one probe at a time, whatever the clock says.
local function probe_busy(c, now)
  return c.probe ~= '' and (now < c.probe_until or redis.call('HGET', rec(c.probe), 's') == 'held')
end

-- Commands over many members, in chunks Lua's unpack can take.
local function each_chunk(list, fn)
  for i = 1, #list, 1000 do
    fn(unpack(list, i, math.min(i + 999, #list)))
  end
end

-- Counters summed over a whole call and written once per field at the end.
local function tally()
  local t = {}
  return t, function(field, n) t[field] = (t[field] or 0) + (n or 1) end
end

local function flush(stats, counts)
  for field, n in pairs(counts) do
    if n ~= 0 then redis.call('HINCRBY', stats, field, n) end
  end
end
