--[[ deleteSlot: removes a slot that belongs to no store.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name }
Refuses: NOTFOUND slot, SLOT_IN_STORE. ]]
local before = need(K_SLOTS, 'slot', P.name)
local owner = store_of_slot(P.name)
if owner then rule('SLOT_IN_STORE', 'slot ' .. P.name .. ' still belongs to store ' .. owner .. '; remove it from the store first') end
return finish('deleteSlot', 'slot:' .. P.name, K_SLOTS, P.name, before, nil)
