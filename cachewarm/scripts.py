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
flight across all processes (TAKE_SLOT, RENEW_SLOT): a sorted set of lease tokens
scored by their expiry (server time, so the clients' clocks do not matter).

One slot per script: every script touches the keys of one name, which share a
hash tag (:mod:`cachewarm.keys`), or the fill slots' one key; none writes
statistics (the engine counts outcomes in the process, :class:`cachewarm.metrics.Metrics`).
So each runs unchanged on one node and on a Redis Cluster.
"""

from __future__ import annotations

# Try to take the fill lease for a name that was just missed.
#
# KEYS[1] summary key
# KEYS[2] lease key
# KEYS[3] hold-off key (exists for a while after a change-feed invalidation)
# ARGV[1] lease token (random, unique per attempt)
# ARGV[2] lease time to live, in milliseconds (the holder renews it while it reads)
#
# Returns {1, value} if the value appeared meanwhile, {2} if we now hold the
# lease, {0} if someone else holds it, {3} during a hold-off (read DynamoDB,
# store nothing: the index may still hold the data from before the write).
ACQUIRE = """
local value = redis.call('GET', KEYS[1])
if value then
  return {1, value}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {3}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
return {0}
"""

# Keep a lease alive while its DynamoDB read is in flight (the lease keeper, every
# third of the lease's life). A lease voided meanwhile (a write invalidated the
# name) is not brought back.
#
# KEYS[1] lease key
# ARGV[1] lease token
# ARGV[2] lease time to live, in milliseconds
#
# Returns 1 if the lease is still ours, else 0.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Give a lease up (its read failed), if it is still ours.
#
# KEYS[1] lease key
# ARGV[1] lease token
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Take one of the fill slots (CACHE_MAX_FILLS) for a lease just acquired.
#
# KEYS[1] fill slots: sorted set of lease tokens scored by expiry (ms, server time)
# ARGV[1] lease token
# ARGV[2] slot time to live, in milliseconds (renewed with the lease)
# ARGV[3] most fills in flight
#
# Returns 1 if the slot is ours, 0 if every slot is taken (the holder keeps its
# lease, so the name's other readers keep waiting for it, and tries again).
TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# Keep a fill slot while its read runs; a slot that lapsed meanwhile is not taken again.
#
# KEYS[1] fill slots
# ARGV[1] lease token
# ARGV[2] slot time to live, in milliseconds
RENEW_SLOT = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Store a value only if we still hold the lease and it is not older than the floor.
#
# KEYS[1] summary key
# KEYS[2] lease key
# KEYS[3] version floor key
# KEYS[4] hold-off key
# ARGV[1] lease token
# ARGV[2] value (serialized summary)
# ARGV[3] time to live, in milliseconds (always > 0: every cache key expires)
# ARGV[4] version of the restaurant in the value
#
# Returns 1 when stored ("fills"), 0 when the lease is gone or not ours
# (invalidated or expired: "refused_lease"), -1 when the value is older than
# the floor a writer set ("refused_floor"), -2 during a change feed's hold-off
# ("refused_hold"; an early refresh can hold a lease taken after the hold began).
FILL = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
local floor = redis.call('GET', KEYS[3])
if floor and tonumber(ARGV[4]) < tonumber(floor) then
  return -1
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return -2
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# Replace values we computed without a lease (bulk warm), unless a writer's
# floor says they are old or a change feed's hold-off is on. One call per name
# (one slot); a warm chunk pipelines its calls, one round trip per shard.
#
# KEYS[1] summary key
# KEYS[2] lease key
# KEYS[3] version floor key
# KEYS[4] hold-off key
# ARGV[1] value
# ARGV[2] time to live in milliseconds
# ARGV[3] version of the value
#
# A live lease is left alone: its holder fills with data at least as new, and
# overwriting would let an in-flight reader's lease check pass on our value.
# Returns 1 if stored, else 0.
WARM = """
local floor = redis.call('GET', KEYS[3])
if floor and tonumber(ARGV[3]) < tonumber(floor) then
  return 0
end
if redis.call('EXISTS', KEYS[2], KEYS[4]) > 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
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
