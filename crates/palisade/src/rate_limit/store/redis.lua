-- Palisade rate limit: every quota of one request, checked and consumed atomically
-- (all or nothing) in one round trip.
--
-- A transcription of `decide` in crates/palisade/src/rate_limit/algorithm.rs; keep them in step.
-- All numbers are integers below 2^53 (microseconds), exact in Lua's doubles.
--
-- KEYS[i]  state of quota i. All keys of a call share one {hash tag}, so one cluster slot.
-- ARGV[1]  now in microseconds since the epoch, or "" to use this server's TIME (the default:
--          every instance then shares one clock).
-- ARGV[2 + 4(i-1) ..]  quota i: algorithm ("g" GCRA | "f" fixed window), count, period_us, burst
-- Returns  {now, allowed, then per quota: allowed, remaining, reset_us, retry_after_us}
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end

local n = #KEYS
local status = {}
local writes = {}
local unconsumed_reset = {}
local all = 1

for i = 1, n do
  local a = 2 + (i - 1) * 4
  local alg = ARGV[a]
  local count = tonumber(ARGV[a + 1])
  local period = tonumber(ARGV[a + 2])
  local burst = tonumber(ARGV[a + 3])
  local raw = redis.call('GET', KEYS[i])
  if alg == 'g' then
    local t = math.floor(period / count)
    if t < 1 then t = 1 end
    local tat = now
    if raw then
      local s = tonumber(raw)
      if s and s > now then tat = s end
    end
    local new_tat = tat + t
    local span = burst * t
    if now + span < new_tat then
      status[i] = {0, 0, tat - now, new_tat - span - now}
    else
      status[i] = {1, math.floor((now + span - new_tat) / t), new_tat - now, 0}
      writes[i] = {string.format('%.0f', new_tat), new_tat}
    end
    unconsumed_reset[i] = tat - now
  else
    local index = math.floor(now / period)
    local ends = (index + 1) * period
    local c = 0
    if raw then
      local wi, wc = string.match(raw, '^(%d+):(%d+)$')
      if wi and tonumber(wi) == index then c = tonumber(wc) end
    end
    local reset = ends - now
    if c + 1 > count then
      status[i] = {0, 0, reset, reset}
    else
      status[i] = {1, count - c - 1, reset, 0}
      writes[i] = {string.format('%.0f:%.0f', index, c + 1), ends}
    end
    unconsumed_reset[i] = reset
  end
  if status[i][1] == 0 then all = 0 end
end

if all == 1 then
  for i = 1, n do
    local w = writes[i]
    -- The TTL only collects garbage: the state itself says when it stops mattering.
    local ttl = math.floor((w[2] - now + 999) / 1000)
    if ttl < 1 then ttl = 1 end
    redis.call('SET', KEYS[i], w[1], 'PX', ttl)
  end
else
  for i = 1, n do
    if status[i][1] == 1 then
      status[i][2] = status[i][2] + 1
      status[i][3] = unconsumed_reset[i]
    end
  end
end

local out = {now, all}
for i = 1, n do
  for j = 1, 4 do out[#out + 1] = status[i][j] end
end
return out
