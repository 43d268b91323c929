--[[ abortMove: undoes phase 1; state active on the old store.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name }
Refuses: NOTFOUND user, NOT_MOVING. ]]
local before = need(K_USERS, 'user', P.name)
if before.state ~= 'moving' or not before.movingTo then rule('NOT_MOVING', 'user ' .. P.name .. ' is not moving') end
local after = copy(before)
after.state = 'active'
after.movingTo = nil
count_users(before.movingTo, -1)
return finish('abortMove', 'user:' .. P.name, K_USERS, P.name, before, after)
