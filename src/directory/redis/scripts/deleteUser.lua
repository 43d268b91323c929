--[[ deleteUser.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name }
Refuses: NOTFOUND user. ]]
local before = need(K_USERS, 'user', P.name)
count_users(before.store, -1)
count_users(before.movingTo, -1)
return finish('deleteUser', 'user:' .. P.name, K_USERS, P.name, before, nil)
