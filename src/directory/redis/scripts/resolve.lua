--[[ resolve (read-only): user -> store -> current master slot, read at one version in one round trip.
KEYS[1] version  KEYS[2] slots  KEYS[3] stores  KEYS[4] users   (see common.lua)
ARGV[1] user name (canonical)
Returns ONE string, a JSON array [version, user, store, slot] (the stored entries, spliced in as
they are), or an integer:
  version (>= 1)  the user is unknown: a permanent truth, answered 550 5.1.1
  0               no version key: this Redis holds no directory (never initialised, wrong db or
                  keyPrefix, or it restarted without its data). NOT "unknown user": every
                  recipient would bounce. The caller raises DirectoryUnavailableError (451).
  -1              the user's store or its master slot is missing: inconsistent, so transient.

This is the hot path of every delivery and login, so it does as little as it can: no JSON is
decoded. The two names it needs are cut out of the stored JSON with a pattern. That is exact for
what the mutation scripts store (compact cjson output; names are [%w._-] and no stored value
holds a double quote, so `"store":"` can only be the key), with cjson.decode as the fallback for
any other spelling. One string instead of an array of four also costs the client one bulk reply
and one JSON.parse instead of four replies and three parses. ]]
local version = redis.call('GET', KEYS[1])
if not version then return 0 end
local user = redis.call('HGET', KEYS[4], ARGV[1])
if not user then return tonumber(version) end
local store_name = string.match(user, '"store":"([^"]+)"') or cjson.decode(user).store
local store = redis.call('HGET', KEYS[3], store_name)
if not store then return -1 end
local master_name = string.match(store, '"currentMaster":"([^"]+)"') or cjson.decode(store).currentMaster
local slot = redis.call('HGET', KEYS[2], master_name)
if not slot then return -1 end
return '[' .. version .. ',' .. user .. ',' .. store .. ',' .. slot .. ']'
