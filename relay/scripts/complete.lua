#!lua
-- Moves out of held, fenced: held -> delivered | rejected | dead_letter | waiting (retry, or
-- given back) | parked (retry while the tenant's circuit is open). Applied only while the
-- event's lease token is the caller's; a stale caller changes nothing and is counted.
-- Also feeds the tenant's circuit breaker, in the order the calls finished.
-- KEYS[1] held (zset)   KEYS[2] due (zset)   KEYS[3] dlq (zset)   KEYS[4] circuits (hash)
-- KEYS[5] parked (set)   KEYS[6] stats (hash)
-- derived: e:<member> (hash), h:<member> (list), park:<tenant> (list), fails:<tenant> (zset),
-- done:<bucket> (hash), minute:<minute> (hash: outcome -> count, for rate charts, 2 h TTL)
-- ARGV[1] prefix, [2] retention s (ended events), [3] breaker threshold (distinct failing
-- events), [4] breaker window ms, [5] cooldown ms, [6] max cooldown ms, [7] history length,
-- [8] dedupe bucket span ms, [9] dead-letter cap (0: none), [10] the events as one JSON array
-- (one argument, not twelve per event: cheaper to send and to pack), each [member, token,
-- kind (delivered | rejected | dead_letter | retry | release), refund (1: the call certainly
-- did not reach the service), breaker ('' | ok | fail | force), delay ms, code, signal,
-- reason, interaction id (a string: ids pass 2^53), latency ms ('' if none), ambiguous (1:
-- sent, then no answer: the service may have recorded it)]
-- Delivered and rejected events leave their record for one field in the current done bucket
-- ('d<interaction id>' / 'r<code>'); a history, if any, stays for `retention`. Past the
-- dead-letter cap the oldest dead letters are dropped, and counted. Counters, the latency
-- histogram and index removals are summed and written once per call.
-- Returns {results, opened}: per event 'ok', 'stale' (another lease holds it, or it ended
-- otherwise) or 'done' (applied before: a retried call), and 1 where this event's failure
-- opened its tenant's circuit.
local now = now_ms()
local retention, threshold = tonumber(ARGV[2]), tonumber(ARGV[3])
local window, cooldown, max_cooldown = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local history_max, span, dlq_cap = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local HELD, DUE, DLQ, CIRCUITS, PARKED, STATS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local BUCKETS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}
local LABELS = {'0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1.0', '2.5', '5.0',
                '10.0', '30.0'}
local counts, count = tally()
local per_minute, count_minute = tally()
local latency_sum = 0
local closed = {}  -- tenants this call already closed, with no failure since
local done_bucket = done_key(math.floor(now / span))
local ended_here, left, dead = false, {}, false

local function open_circuit(tenant, reason)
  local c = {open_until = now + cooldown, cooldown = cooldown, since = now, reason = reason,
             probe = '', probe_until = 0, reopenings = 0}
  redis.call('HSET', CIRCUITS, tenant, cjson.encode(c))
  redis.call('DEL', P .. 'fails:' .. tenant)
  count('circuit_opened:' .. tenant)
end

-- A failure: re-opens an open circuit when it was the probe; otherwise opens a closed one once
-- `threshold` distinct events failed within the window (at once when forced). 1 if it opened.
local function failure(tenant, m, reason, force)
  closed[tenant] = nil
  local raw = redis.call('HGET', CIRCUITS, tenant)
  if raw then
    local c = cjson.decode(raw)
    if c.probe == m then
      c.cooldown = math.min(max_cooldown, c.cooldown * 2)
      c.open_until = now + c.cooldown
      c.probe, c.probe_until = '', 0
      c.reopenings = c.reopenings + 1
      c.reason = reason
      redis.call('HSET', CIRCUITS, tenant, cjson.encode(c))
    end
    return 0
  end
  if not force then
    local fk = P .. 'fails:' .. tenant
    redis.call('ZADD', fk, now, m)
    redis.call('ZREMRANGEBYSCORE', fk, '-inf', now - window)
    redis.call('PEXPIRE', fk, window)
    if redis.call('ZCARD', fk) < threshold then return 0 end
  end
  open_circuit(tenant, reason)
  return 1
end

local function success(tenant)
  if closed[tenant] then return end
  closed[tenant] = true
  if redis.call('HDEL', CIRCUITS, tenant) == 1 then count('circuit_closed:' .. tenant) end
  redis.call('DEL', P .. 'fails:' .. tenant)
end

local function observe_latency(ms)
  local label = '+Inf'
  for b = 1, #BUCKETS do
    if ms <= BUCKETS[b] then label = LABELS[b]; break end
  end
  count('latency_le:' .. label)
  latency_sum = latency_sum + ms / 1000
end

-- A delivered or rejected event leaves no record, only its field in a done bucket: a retried
-- call finds this very outcome there (an interaction id is the platform's, never reused),
-- in this bucket or, across a boundary, the one before.
local function ended_by(m, kind, iid, code)
  if kind ~= 'delivered' and kind ~= 'rejected' then return false end
  return ended(m, now, span, 1) == (kind == 'delivered' and 'd' .. iid or 'r' .. code)
end

-- A probe that ended with no word on the service (given back, refused, out of budget) frees
-- its tenant's turn at once: else the next probe would wait until `probe_until`, and a
-- tenant whose every event is refused would drain one event per probe period.
local function free_probe(tenant, m)
  local raw = redis.call('HGET', CIRCUITS, tenant)
  if not raw then return end
  local c = cjson.decode(raw)
  if c.probe == m then
    c.probe, c.probe_until = '', 0
    redis.call('HSET', CIRCUITS, tenant, cjson.encode(c))
  end
end

local results, opened = {}, {}
for _, e in ipairs(cjson.decode(ARGV[10])) do
  local m, token, kind, refund, breaker = e[1], e[2], e[3], e[4], e[5]
  local delay, code, signal, reason = e[6], e[7], e[8], e[9]
  local iid, latency, ambiguous = e[10], e[11], e[12]
  local key, tenant = rec(m), tenant_of(m)
  local n = #results + 1
  opened[n] = 0
  local r = redis.call('HMGET', key, 'l', 'f', 'a')
  if r[1] ~= token then
    if r[2] == token or (not r[1] and not r[2] and ended_by(m, kind, iid, code)) then
      results[n] = 'done'
    else
      results[n] = 'stale'
      count('stale')
    end
  else
    results[n] = 'ok'
    left[#left + 1] = m
    if latency ~= '' then observe_latency(latency) end
    if ambiguous == 1 then count('ambiguous') end
    if breaker == 'ok' then success(tenant)
    elseif breaker == 'fail' or breaker == 'force' then
      opened[n] = failure(tenant, m, reason, breaker == 'force')
    else
      free_probe(tenant, m)
    end
    local hk = hist(m)
    local has_history = false
    if kind == 'release' then
      count('released')
    else
      if kind ~= 'delivered' or redis.call('EXISTS', hk) == 1 then
        has_history = true
        redis.call('RPUSH', hk, cjson.encode({t = now, n = tonumber(r[3]), o = kind, g = signal,
                                              k = code, r = reason,
                                              ms = latency ~= '' and latency or nil}))
        redis.call('LTRIM', hk, -history_max, -1)
      end
      count('outcome:' .. kind)
      count_minute(kind)
      count('tenant:' .. tenant .. ':' .. kind)
      if signal ~= '' then count('signal:' .. signal) end
    end
    if kind == 'delivered' or kind == 'rejected' then
      redis.call('HSET', done_bucket, m, kind == 'delivered' and 'd' .. iid or 'r' .. code)
      ended_here = true
      redis.call('DEL', key)
      if has_history then redis.call('EXPIRE', hk, retention) end
    else
      redis.call('HDEL', key, 'l')
      redis.call('HSET', key, 'f', token, 't', now)
      if refund == 1 then redis.call('HINCRBY', key, 'c', -1) end
      if kind ~= 'release' then
        if code ~= '' then redis.call('HSET', key, 'k', code) end
        redis.call('HSET', key, 'g', signal, 'r', reason)
      end
      if kind == 'dead_letter' then
        redis.call('HSET', key, 's', 'dead_letter')
        redis.call('ZADD', DLQ, now, m)
        count('dead_lettered:' .. tenant)
        dead = true
      elseif kind == 'retry' and redis.call('HEXISTS', CIRCUITS, tenant) == 1 then
        redis.call('HSET', key, 's', 'parked')
        redis.call('RPUSH', P .. 'park:' .. tenant, m)
        redis.call('SADD', PARKED, tenant)
      else
        redis.call('HSET', key, 's', 'waiting')
        redis.call('ZADD', DUE, now + delay, m)
      end
    end
  end
end
each_chunk(left, function(...) redis.call('ZREM', HELD, ...) end)
if ended_here then redis.call('PEXPIRE', done_bucket, retention * 1000 + span) end
if dead and dlq_cap > 0 then
  local excess = redis.call('ZCARD', DLQ) - dlq_cap
  if excess > 0 then
    for _, old in ipairs(redis.call('ZRANGE', DLQ, 0, excess - 1)) do
      redis.call('ZREM', DLQ, old)
      redis.call('DEL', rec(old), hist(old))
    end
    count('dead_letters_dropped', excess)
  end
end
flush(STATS, counts)
if next(per_minute) then
  local minute = P .. 'minute:' .. math.floor(now / 60000)
  flush(minute, per_minute)
  redis.call('PEXPIRE', minute, 7200000)
end
if latency_sum > 0 then redis.call('HINCRBYFLOAT', STATS, 'latency_sum', latency_sum) end
return {results, opened}
