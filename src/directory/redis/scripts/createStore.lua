--[[ createStore: a store of >= 2 slots on different machines. Its epoch starts at the highest of
0, the payload's `epoch` (a restore brings exported epochs back) and one above the epoch a deleted
store of the same name reached (retiredEpochs), so a compare-and-set on the old store's epoch
cannot win on the new one.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, slots: [..], preferredMaster, currentMaster? (default preferredMaster), state?, epoch? }
Refuses: INVALID_NAME, EXISTS, INVALID_EPOCH, INVALID_STATE, TOO_FEW_SLOTS, DUPLICATE_SLOT,
NOTFOUND slot, SLOT_IN_STORE, SAME_MACHINE, MASTER_NOT_IN_STORE. ]]
local name = check_name('store', P.name)
if get(K_STORES, name) then rule('EXISTS', 'store ' .. name .. ' already exists') end
local epoch = 0
if P.epoch ~= nil then
  if type(P.epoch) ~= 'number' or P.epoch ~= math.floor(P.epoch) or P.epoch < 0 then
    rule('INVALID_EPOCH', 'store ' .. name .. ': epoch ' .. show(P.epoch) .. ' must be a non-negative integer')
  end
  epoch = P.epoch
end
local retired = redis.call('HGET', K_RETIRED, name)
if retired and tonumber(retired) + 1 > epoch then epoch = tonumber(retired) + 1 end
local store = {
  name = name, slots = P.slots, preferredMaster = P.preferredMaster,
  currentMaster = P.currentMaster or P.preferredMaster,
  state = check_enum('store ' .. name .. ': state', STORE_STATES, P.state or 'active'),
  epoch = epoch,
}
check_layout(store, nil)
-- Only after every check: a script that fails after a write keeps the write.
redis.call('HDEL', K_RETIRED, name)
return finish('createStore', 'store:' .. name, K_STORES, name, nil, store)
