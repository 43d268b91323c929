--[[ finishMove: phase 2 of a move; store = movingTo, state active.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name }
Refuses: NOTFOUND user, NOT_MOVING, NOTFOUND store (movingTo vanished). ]]
local before = need(K_USERS, 'user', P.name)
if before.state ~= 'moving' or not before.movingTo then rule('NOT_MOVING', 'user ' .. P.name .. ' is not moving') end
need(K_STORES, 'store', before.movingTo)
local after = copy(before)
after.store = before.movingTo
after.state = 'active'
after.movingTo = nil
count_users(before.store, -1)
return finish('finishMove', 'user:' .. P.name, K_USERS, P.name, before, after)
