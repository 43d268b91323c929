--[[ resolve (read-only): user -> store -> current master slot, read at one version in one round trip.
KEYS[1] version  KEYS[2] slots  KEYS[3] stores  KEYS[4] users   (see common.lua)
ARGV[1] user name (canonical)
Returns { version } when the user is unknown (or its store/master is missing), else
{ version, userJSON, storeJSON, slotJSON }. ]]
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local user = redis.call('HGET', KEYS[4], ARGV[1])
if not user then return { version } end
local store = redis.call('HGET', KEYS[3], cjson.decode(user).store)
if not store then return { version } end
local slot = redis.call('HGET', KEYS[2], cjson.decode(store).currentMaster)
if not slot then return { version } end
return { version, user, store, slot }
