--[[ updateSlot: replaces a slot's machine, ip and ports (state kept unless given).
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, machine, ip, lmtp?, imap?, pop3?, state? }
Refuses: NOTFOUND slot, the input rules of createSlot, SAME_MACHINE (the slot's store would have
two slots on one machine). ]]
local before = need(K_SLOTS, 'slot', P.name)
local after = slot_from(P, before)
local owner = store_of_slot(after.name)
if owner then check_layout(get(K_STORES, owner), after) end
return finish('updateSlot', 'slot:' .. after.name, K_SLOTS, after.name, before, after)
