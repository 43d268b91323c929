--[[ setPasswordHash: sets (string) or clears (JSON null / absent) a user's password hash. The audit
record shows only "[set]".
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { name, hash? }
Refuses: NOTFOUND user, INVALID_HASH (empty, longer than 1024, not a string). ]]
local before = need(K_USERS, 'user', P.name)
local after = copy(before)
local hash = P.hash
if hash == nil or hash == cjson.null then
  after.passwordHash = nil
elseif type(hash) ~= 'string' or #hash == 0 or #hash > 1024 then
  rule('INVALID_HASH', 'user ' .. P.name .. ': password hash must be a non-empty string of at most 1024 characters')
else
  after.passwordHash = hash
end
return finish('setPasswordHash', 'user:' .. P.name, K_USERS, P.name, before, after)
