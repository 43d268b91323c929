--[[ createStore: a store of >= 2 slots on different machines, epoch 0.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, slots: [..], preferredMaster, currentMaster? (default preferredMaster), state? }
Refuses: INVALID_NAME, EXISTS, INVALID_STATE, TOO_FEW_SLOTS, DUPLICATE_SLOT, NOTFOUND slot,
SLOT_IN_STORE, SAME_MACHINE, MASTER_NOT_IN_STORE. ]]
local name = check_name('store', P.name)
if get(K_STORES, name) then rule('EXISTS', 'store ' .. name .. ' already exists') end
local store = {
  name = name, slots = P.slots, preferredMaster = P.preferredMaster,
  currentMaster = P.currentMaster or P.preferredMaster,
  state = check_enum('store ' .. name .. ': state', STORE_STATES, P.state or 'active'),
  epoch = 0,
}
check_layout(store, nil)
return finish('createStore', 'store:' .. name, K_STORES, name, nil, store)
