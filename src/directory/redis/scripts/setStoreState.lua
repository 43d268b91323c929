--[[ setStoreState: active | failing-over | down.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, state }
Refuses: NOTFOUND store, INVALID_STATE. ]]
local before = need(K_STORES, 'store', P.name)
local after = copy(before)
after.state = check_enum('store ' .. P.name .. ': state', STORE_STATES, P.state)
return finish('setStoreState', 'store:' .. P.name, K_STORES, P.name, before, after)
