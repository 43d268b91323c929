--[[ updateStore: changes a store's slot list, preferred master and (optionally) state. The
current master changes only by failover and must stay in the list.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, slots: [..], preferredMaster, currentMaster? (must equal the current), state? }
Refuses: NOTFOUND store, USE_FAILOVER, INVALID_STATE, and the layout rules of createStore. ]]
local before = need(K_STORES, 'store', P.name)
if P.currentMaster ~= nil and P.currentMaster ~= before.currentMaster then
  rule('USE_FAILOVER', 'store ' .. P.name .. ': the current master changes only by failover')
end
local after = copy(before)
after.slots = P.slots
after.preferredMaster = P.preferredMaster
after.state = check_enum('store ' .. P.name .. ': state', STORE_STATES, P.state or before.state)
check_layout(after, nil)
return finish('updateStore', 'store:' .. P.name, K_STORES, P.name, before, after)
