--[[ beginMove: phase 1 of a move; state moving, movingTo = toStore (deliveries tempfail meanwhile).
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, toStore }
Refuses: NOTFOUND user, NOTFOUND store, USER_MOVING, SAME_STORE. ]]
local before = need(K_USERS, 'user', P.name)
need(K_STORES, 'store', P.toStore)
if before.state == 'moving' then rule('USER_MOVING', 'user ' .. P.name .. ' is already moving to ' .. tostring(before.movingTo)) end
if before.store == P.toStore then rule('SAME_STORE', 'user ' .. P.name .. ' is already on store ' .. P.toStore) end
local after = copy(before)
after.state = 'moving'
after.movingTo = P.toStore
count_users(P.toStore, 1)
return finish('beginMove', 'user:' .. P.name, K_USERS, P.name, before, after)
