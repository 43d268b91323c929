--[[ createSlot: adds a slot.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, machine, ip, lmtp?, imap?, pop3?, state? }
Refuses: INVALID_NAME, INVALID_MACHINE, INVALID_IP, INVALID_PORT, INVALID_STATE, EXISTS. ]]
local slot = slot_from(P, nil)
if get(K_SLOTS, slot.name) then rule('EXISTS', 'slot ' .. slot.name .. ' already exists') end
return finish('createSlot', 'slot:' .. slot.name, K_SLOTS, slot.name, nil, slot)
