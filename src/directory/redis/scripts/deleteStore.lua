--[[ deleteStore: removes a store no user is on or moving to (its slots become free).
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name }
Refuses: NOTFOUND store, STORE_HAS_USERS. ]]
local before = need(K_STORES, 'store', P.name)
local n = tonumber(redis.call('HGET', K_USERCOUNT, P.name) or '0')
if n > 0 then rule('STORE_HAS_USERS', 'store ' .. P.name .. ' still has ' .. n .. ' user(s); move them first') end
redis.call('HDEL', K_USERCOUNT, P.name)
return finish('deleteStore', 'store:' .. P.name, K_STORES, P.name, before, nil)
