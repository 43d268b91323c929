--[[ createUser: a user (canonical lower-case name) on an existing store.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, store, state? (active | suspended) }
Refuses: INVALID_NAME, EXISTS, NOTFOUND store, INVALID_STATE, USE_BEGIN_MOVE (state moving). ]]
if not valid_user(P.name) then rule('INVALID_NAME', 'user name ' .. show(P.name) .. ' must be lower-case, like alice or alice@example.com') end
if get(K_USERS, P.name) then rule('EXISTS', 'user ' .. P.name .. ' already exists') end
need(K_STORES, 'store', P.store)
local state = check_enum('user ' .. P.name .. ': state', USER_STATES, P.state or 'active')
if state == 'moving' then rule('USE_BEGIN_MOVE', 'user ' .. P.name .. ': state moving is set by a move, not directly') end
count_users(P.store, 1)
return finish('createUser', 'user:' .. P.name, K_USERS, P.name, nil, { name = P.name, store = P.store, state = state })
