--[[ setUserState: active | suspended (moving is set by beginMove).
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, state }
Refuses: NOTFOUND user, INVALID_STATE, USE_BEGIN_MOVE, USER_MOVING (finish or abort first). ]]
local before = need(K_USERS, 'user', P.name)
local state = check_enum('user ' .. P.name .. ': state', USER_STATES, P.state)
if state == before.state then return finish('setUserState', 'user:' .. P.name, K_USERS, P.name, before, before) end
if state == 'moving' then rule('USE_BEGIN_MOVE', 'user ' .. P.name .. ': state moving is set by a move, not directly') end
if before.state == 'moving' then rule('USER_MOVING', 'user ' .. P.name .. ' is moving; finish or abort the move first') end
local after = copy(before)
after.state = state
return finish('setUserState', 'user:' .. P.name, K_USERS, P.name, before, after)
