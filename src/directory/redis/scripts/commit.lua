--[[ commit: makes a whole change set (one `directory apply`) visible at once, so a reader sees the
directory before or after it, never in between. The caller (src/directory/redis/commit.ts) has
checked every mutation against the snapshot at version `from` with the same rules the mutation
scripts enforce; this script only refuses when the directory is no longer at `from`, so what
was checked is exactly what it changes.

Tables changed in a few entries are patched here, entry by entry. A table changed in many is
written whole by the caller beforehand, under staging keys (HSET/RPUSH + PEXPIRE, a chunk at a
time, so lookups are never held up), and swapped in here by RENAME: O(1) however big, the old
table freed in the background (UNLINK). That keeps this script short at 100,000 users.

KEYS[1..7]  version, slots, stores, users, history, userCount, retiredEpochs: as in common.lua
KEYS[8..11] staged slots, stores, users (hashes) and history (list, newest first, complete):
            read only when the header says that table is replaced
ARGV[1] channel   pub/sub channel for invalidations
ARGV[2] header    JSON: { from, to, historyMax,
                    replace = { slots?, stores?, users?, history? }  -- the staged size of each replaced table
                    n = { slots, stores, users, retired, userCount, records, events } }  -- entries that follow
ARGV[3..] the entries, section after section in the order of `n`:
  slots, stores, users: name, entryJSON ('' deletes)     retired: store, epoch ('' deletes)
  userCount: store, count (the whole table: it is replaced)
  records: audit record JSON, oldest first (when history is not replaced)
  events: change event JSON, published in order
Returns: `to`, the new version (from + the number of audit records).
Errors (nothing is written when one is raised; every check comes before the first write):
  SR_CONFLICT <from> <actual> <text>  the directory is no longer at `from`: plan again
  SR_ARG <text>                       malformed call, or a staged table missing or incomplete
                                      (expired: the apply took longer than the staging TTL) ]]
local function fail(kind, detail) error({ err = 'SR_' .. kind .. ' ' .. detail }) end

if #KEYS ~= 11 then fail('ARG', 'expected 11 keys, got ' .. #KEYS) end
local K_VERSION, K_HISTORY, K_USERCOUNT, K_RETIRED = KEYS[1], KEYS[5], KEYS[6], KEYS[7]
local LIVE = { slots = KEYS[2], stores = KEYS[3], users = KEYS[4] }
local STAGED = { slots = KEYS[8], stores = KEYS[9], users = KEYS[10], history = KEYS[11] }
local CHANNEL = ARGV[1]
if type(CHANNEL) ~= 'string' or #CHANNEL == 0 then fail('ARG', 'channel missing') end
local decoded, H = pcall(cjson.decode, ARGV[2] or '')
if not decoded or type(H) ~= 'table' or type(H.n) ~= 'table' then fail('ARG', 'header must be a JSON object with n') end
local function count(v, what)
  if type(v) ~= 'number' or v ~= math.floor(v) or v < 0 then fail('ARG', what .. ' must be an integer >= 0') end
  return v
end
local from, to, history_max = count(H.from, 'from'), count(H.to, 'to'), count(H.historyMax, 'historyMax')
if history_max < 1 then fail('ARG', 'historyMax must be >= 1') end
if to <= from then fail('ARG', 'to must be above from') end
local replace = type(H.replace) == 'table' and H.replace or {}
local SECTIONS = { { 'slots', 2 }, { 'stores', 2 }, { 'users', 2 }, { 'retired', 2 }, { 'userCount', 2 },
  { 'records', 1 }, { 'events', 1 } }
local at, bounds, n = 3, {}, {}
for _, s in ipairs(SECTIONS) do
  n[s[1]] = count(H.n[s[1]] or 0, 'n.' .. s[1])
  bounds[s[1]] = { at, at + n[s[1]] * s[2] - 1 }
  at = at + n[s[1]] * s[2]
end
if at - 1 ~= #ARGV then fail('ARG', 'header counts ' .. (at - 1) .. ' arguments, got ' .. #ARGV) end
if replace.history == nil and n.records ~= to - from then fail('ARG', 'one audit record per version is required') end

-- The compare-and-set, then the staged tables, before anything is written.
local actual = tonumber(redis.call('GET', K_VERSION) or '0')
if actual ~= from then
  fail('CONFLICT', from .. ' ' .. actual .. ' the directory is at version ' .. actual .. ', the plan was made at version ' .. from)
end
for name, key in pairs(STAGED) do
  local want = replace[name]
  if want ~= nil then
    count(want, 'replace.' .. name)
    local have = name == 'history' and redis.call('LLEN', key) or redis.call('HLEN', key)
    if have ~= want then fail('ARG', 'staged ' .. name .. ' holds ' .. have .. ' entries, expected ' .. want .. ' (expired?)') end
  end
end

local function swap_in(live, staged, size)
  redis.call('UNLINK', live) -- freed in the background: a 100,000-entry table does not block
  if size > 0 then
    redis.call('RENAME', staged, live)
    redis.call('PERSIST', live) -- the staging TTL must not follow the table into place
  end
end

local function pairs_of(section, fn)
  local b = bounds[section]
  for i = b[1], b[2], 2 do fn(ARGV[i], ARGV[i + 1]) end
end

for _, name in ipairs({ 'slots', 'stores', 'users' }) do
  if replace[name] ~= nil then swap_in(LIVE[name], STAGED[name], replace[name]) end
  pairs_of(name, function(entry, json)
    if json == '' then redis.call('HDEL', LIVE[name], entry) else redis.call('HSET', LIVE[name], entry, json) end
  end)
end
pairs_of('retired', function(store, epoch)
  if epoch == '' then redis.call('HDEL', K_RETIRED, store) else redis.call('HSET', K_RETIRED, store, epoch) end
end)
redis.call('UNLINK', K_USERCOUNT)
pairs_of('userCount', function(store, n) redis.call('HSET', K_USERCOUNT, store, n) end)

if replace.history ~= nil then
  swap_in(K_HISTORY, STAGED.history, replace.history)
else
  local b = bounds.records
  for i = b[1], b[2] do redis.call('LPUSH', K_HISTORY, ARGV[i]) end
  redis.call('LTRIM', K_HISTORY, 0, history_max - 1)
end
redis.call('SET', K_VERSION, to)
local b = bounds.events
for i = b[1], b[2] do redis.call('PUBLISH', CHANNEL, ARGV[i]) end
return to
