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
