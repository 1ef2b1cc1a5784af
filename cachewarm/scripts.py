"""Lua scripts run atomically inside Redis. Each starts with its KEYS/ARGV header.

Leases follow Facebook's memcache paper (NSDI 2013): a miss hands out at most one
lease per key; only the lease holder may fill; a delete (invalidation) voids the
lease, so a reader that loaded old data before a write can never store it after
the write's invalidation. The version floor covers what a lease cannot: a
reader that starts after the invalidation but still reads an old version from an
eventually consistent index. Writes made by other applications carry no version
we know of, so their invalidations (from the table's change feed) set a short
hold-off instead: while the hold key lives, reads go to DynamoDB and nothing is
stored, which outlasts the index's lag.

Leases are kept alive while the holder's DynamoDB read is in flight (RENEW, from
:mod:`cachewarm.leases`) and given up when the read fails (RELEASE), so a waiter
can wait as long as a live lease exists, however slow DynamoDB is, and a dead
holder's lease lapses within one lease lifetime. Fill slots cap the fills in
flight across all processes: a sorted set of lease tokens scored by their expiry
(server time, so clocks of the clients do not matter), renewed with the lease.
"""

from __future__ import annotations

# Try to take the fill lease (and a fill slot) for a key that was just missed.
#
# KEYS[1] summary key
# KEYS[2] lease key
# KEYS[3] stats hash of the current minute (counts "misses", "refused_hold")
# KEYS[4] hold-off key (exists for a while after a change-feed invalidation)
# KEYS[5] fill slots: sorted set of lease tokens scored by expiry (ms, server time)
# ARGV[1] lease token (random, unique per attempt)
# ARGV[2] lease time to live, in milliseconds (the holder renews it while it reads)
# ARGV[3] stats hash time to live, in seconds
# ARGV[4] most fills in flight across all processes, or 0 for no cap
#
# Returns {1, value} if the value appeared meanwhile, {2} if we now hold the
# lease (and a slot), {0} if someone else holds the lease, {3} during a hold-off
# (read DynamoDB, store nothing: the index may still hold the data from before
# the write), {4} if every fill slot is taken (wait, then try again).
ACQUIRE = """
local value = redis.call('GET', KEYS[1])
if value then
  return {1, value}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'misses', 1)
  redis.call('HINCRBY', KEYS[3], 'refused_hold', 1)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  return {3}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0}
end
local cap = tonumber(ARGV[4])
if cap > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= cap then
    return {4}
  end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[5], ARGV[2])
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'misses', 1)
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {2}
"""

# Keep a fill alive while its DynamoDB read is in flight (the lease keeper, every
# third of the lease's life). A lease voided meanwhile (a write invalidated the
# name) is not brought back; the fill slot is kept either way: the read is still
# running, and the slot bounds reads in flight, not leases.
#
# KEYS[1] lease key
# KEYS[2] fill slots
# ARGV[1] lease token
# ARGV[2] lease time to live, in milliseconds
# ARGV[3] 1 if the fill holds a slot, else 0
#
# Returns 1 if the lease is still ours, else 0.
RENEW = """
local ours = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ours = 1
end
if ARGV[3] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
end
return ours
"""

# Give a fill up (its read failed): free the lease if it is still ours, and the slot.
#
# KEYS[1] lease key
# KEYS[2] fill slots
# ARGV[1] lease token
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# Store a value only if we still hold the lease and it is not older than the floor.
#
# KEYS[1] summary key
# KEYS[2] lease key
# KEYS[3] version floor key
# KEYS[4] stats hash of the current minute
# KEYS[5] hold-off key
# KEYS[6] fill slots (the lease token's slot is freed)
# ARGV[1] lease token
# ARGV[2] value (serialized summary)
# ARGV[3] time to live, in milliseconds (always > 0: every cache key expires)
# ARGV[4] version of the restaurant in the value
# ARGV[5] microseconds the DynamoDB read took (counted as fill_us)
# ARGV[6] stats hash time to live, in seconds
#
# Returns 1 when stored ("fills"), 0 when the lease is gone or not ours
# (invalidated or expired: "refused_lease"), -1 when the value is older than
# the floor a writer set ("refused_floor"), -2 during a change feed's hold-off
# ("refused_hold"; an early refresh can hold a lease taken after the hold began).
FILL = """
redis.call('ZREM', KEYS[6], ARGV[1])
local outcome = 1
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  outcome = 0
else
  redis.call('DEL', KEYS[2])
  local floor = redis.call('GET', KEYS[3])
  if floor and tonumber(ARGV[4]) < tonumber(floor) then
    outcome = -1
  elseif redis.call('EXISTS', KEYS[5]) == 1 then
    outcome = -2
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
end
local counter = {[1] = 'fills', [0] = 'refused_lease', [-1] = 'refused_floor', [-2] = 'refused_hold'}
redis.call('HINCRBY', KEYS[4], counter[outcome], 1)
redis.call('HINCRBY', KEYS[4], 'fill_us', ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[6])
return outcome
"""

# Replace values we computed without a lease (bulk warm), unless a writer's
# floor says they are old or a change feed's hold-off is on. One call stores a
# whole chunk: one round trip.
#
# KEYS[1]     stats hash of the current minute (counts "fills")
# KEYS[4i-2], KEYS[4i-1], KEYS[4i], KEYS[4i+1]  summary, lease, floor and hold-off keys of entry i
# ARGV[1]     stats hash time to live, in seconds
# ARGV[4i-2]  value of entry i
# ARGV[4i-1]  time to live in milliseconds of entry i
# ARGV[4i]    version of entry i
# ARGV[4i+1]  unused (keeps ARGV aligned with KEYS)
#
# A live lease is left alone: its holder fills with data at least as new, and
# overwriting would let an in-flight reader's lease check pass on our value.
# Returns the number of entries stored.
WARM = """
local stored = 0
for i = 2, #KEYS, 4 do
  local floor = redis.call('GET', KEYS[i + 2])
  local version = tonumber(ARGV[i + 2])
  if (not floor or version >= tonumber(floor)) and redis.call('EXISTS', KEYS[i + 1], KEYS[i + 3]) == 0 then
    redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[i + 1])
    stored = stored + 1
  end
end
if stored > 0 then
  redis.call('HINCRBY', KEYS[1], 'fills', stored)
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return stored
"""

# Invalidate one name: drop the value and void any lease; optionally raise the
# floor (a write of ours, whose version we know) or start a hold-off (a write
# seen in the change feed, whose version we do not know).
#
# KEYS[1] summary key
# KEYS[2] lease key
# KEYS[3] version floor key
# KEYS[4] hold-off key
# ARGV[1] new floor version, or '' for none
# ARGV[2] floor time to live, in milliseconds
# ARGV[3] hold-off in milliseconds, or 0 for none
#
# Returns 1 if a value was removed, else 0.
INVALIDATE = """
local removed = redis.call('UNLINK', KEYS[1])
redis.call('DEL', KEYS[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
end
if ARGV[1] ~= '' then
  local floor = tonumber(redis.call('GET', KEYS[3]) or '-1')
  if tonumber(ARGV[1]) > floor then
    redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  else
    redis.call('PEXPIRE', KEYS[3], ARGV[2])
  end
end
return removed
"""
