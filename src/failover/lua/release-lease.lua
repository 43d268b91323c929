--[[ sr_releaseLease_v1: drop a failover lease only if it is still the caller's.
KEYS[1] the lease key (core/redis-keys.ts failoverLeaseKey)
ARGV[1] the exact value the caller SET (its holder JSON, unique by its token)
Reply: 1 deleted, 0 not ours (expired and taken by another runner, or already gone).
One script, not GET then DEL: between the two a lease that just expired could be taken by
another runner, and the DEL would drop that runner's lease. ]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
