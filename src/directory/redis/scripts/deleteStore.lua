--[[ deleteStore: removes a store no user is on or moving to (its slots become free). Its epoch is
kept in retiredEpochs, so a store created again under the name starts above it.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name }
Refuses: NOTFOUND store, STORE_HAS_USERS. ]]
local before = need(K_STORES, 'store', P.name)
local n = tonumber(redis.call('HGET', K_USERCOUNT, P.name) or '0')
if n > 0 then rule('STORE_HAS_USERS', 'store ' .. P.name .. ' still has ' .. n .. ' user(s); move them first') end
redis.call('HDEL', K_USERCOUNT, P.name)
local retired = tonumber(redis.call('HGET', K_RETIRED, P.name) or '-1')
if before.epoch > retired then redis.call('HSET', K_RETIRED, P.name, before.epoch) end
return finish('deleteStore', 'store:' .. P.name, K_STORES, P.name, before, nil)
