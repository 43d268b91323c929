--[[ setSlotState: up | down | maintenance.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, state }
Refuses: NOTFOUND slot, INVALID_STATE. ]]
local before = need(K_SLOTS, 'slot', P.name)
local after = copy(before)
after.state = check_enum('slot ' .. P.name .. ': state', SLOT_STATES, P.state)
return finish('setSlotState', 'slot:' .. P.name, K_SLOTS, P.name, before, after)
