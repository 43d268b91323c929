--[[ common.lua: prepended to every mutation script by src/directory/redis/scripts.ts.

Every mutation script takes the same keys and leading arguments:
  KEYS[1] version    string: directory version, INCR'd by every effective mutation
  KEYS[2] slots      hash: slot name  -> slot JSON
  KEYS[3] stores     hash: store name -> store JSON
  KEYS[4] users      hash: user name  -> user JSON
  KEYS[5] history    list: audit record JSON, newest first, capped (LPUSH + LTRIM)
  KEYS[6] userCount  hash: store name -> number of users on it or moving to it
  KEYS[7] retiredEpochs  hash: deleted store name -> the highest epoch it reached (a store created
                     again under the name starts above it: an old compare-and-set never wins again)
  ARGV[1] channel     pub/sub channel for invalidations
  ARGV[2] actor       who (1-200 bytes), recorded in the audit record
  ARGV[3] historyMax  audit records kept (integer >= 1)
  ARGV[4] payload     JSON object, fields documented in each script
Returns on success: { version, entryJSON } (entryJSON '' for deletes). A mutation that changes
nothing returns the current version and entry, and neither bumps the version nor audits.
Errors (mapped to typed errors in src/directory/redis/errors.ts, the one place):
  SR_ARG <text>                     malformed call (a bug in the caller)
  SR_RULE <RULE_NAME> <text>        an invariant would break -> DirectoryRuleError
  SR_NOTFOUND <slot|store|user> <n> -> DirectoryNotFoundError
  SR_CONFLICT <expected> <actual> <text> epoch compare-and-set lost -> DirectoryConflictError
]]
local K_VERSION, K_SLOTS, K_STORES, K_USERS, K_HISTORY, K_USERCOUNT, K_RETIRED =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local function fail(kind, detail) error({ err = 'SR_' .. kind .. ' ' .. detail }) end
local function rule(name, text) fail('RULE', name .. ' ' .. text) end
local function notfound(kind, name) fail('NOTFOUND', kind .. ' ' .. tostring(name)) end
local function show(v) if type(v) == 'string' then return '"' .. v .. '"' end return tostring(v) end

if #KEYS ~= 7 then fail('ARG', 'expected 7 keys, got ' .. #KEYS) end
local CHANNEL, ACTOR, HISTORY_MAX = ARGV[1], ARGV[2], tonumber(ARGV[3])
if type(CHANNEL) ~= 'string' or #CHANNEL == 0 then fail('ARG', 'channel missing') end
if type(ACTOR) ~= 'string' or #ACTOR == 0 or #ACTOR > 200 then
  rule('INVALID_ACTOR', 'actor must be a non-empty string of at most 200 characters')
end
if not HISTORY_MAX or HISTORY_MAX < 1 then fail('ARG', 'historyMax must be an integer >= 1') end
local decoded, P = pcall(cjson.decode, ARGV[4] or '')
if not decoded or type(P) ~= 'table' then fail('ARG', 'payload must be a JSON object') end

local function valid_name(s)
  return type(s) == 'string' and #s >= 1 and #s <= 128 and s:match('^[%w][%w%._%-]*$') ~= nil
end

local function valid_user(s)
  if type(s) ~= 'string' or #s == 0 then return false end
  local l, d = s:match('^([^@]+)@([^@]+)$')
  if not l then l = s end
  if #l > 128 or not l:match('^[a-z0-9%._%+=%-]+$') then return false end
  if d and (#d > 253 or not d:match('^[a-z0-9%.%-]+$')) then return false end
  return true
end

local function valid_ip(s)
  if type(s) ~= 'string' then return false end
  local a, b, c, d = s:match('^(%d+)%.(%d+)%.(%d+)%.(%d+)$')
  if a then
    for _, x in ipairs({ a, b, c, d }) do
      if #x > 3 or tonumber(x) > 255 or (#x > 1 and x:sub(1, 1) == '0') then return false end
    end
    return true
  end
  -- IPv6: the caller checks the exact syntax (node:net isIP); here, only its alphabet.
  return #s <= 45 and s:find(':', 1, true) ~= nil and s:match('^[%x:%.]+$') ~= nil
end

local function check_name(kind, s)
  if not valid_name(s) then rule('INVALID_NAME', kind .. ' name ' .. show(s) .. ' is not a valid name') end
  return s
end

local function check_enum(what, allowed, v)
  if type(v) ~= 'string' or not allowed[v] then rule('INVALID_STATE', what .. ' ' .. show(v) .. ' is not allowed') end
  return v
end

local function check_port(what, v, default)
  if v == nil then return default end
  if type(v) ~= 'number' or v ~= math.floor(v) or v < 1 or v > 65535 then
    rule('INVALID_PORT', what .. ' ' .. show(v) .. ' must be an integer 1-65535')
  end
  return v
end

local SLOT_STATES = { up = true, down = true, maintenance = true }
local STORE_STATES = { active = true, ['failing-over'] = true, down = true }
local USER_STATES = { active = true, moving = true, suspended = true }

local function get(key, name)
  if type(name) ~= 'string' then return nil end
  local v = redis.call('HGET', key, name)
  if v then return cjson.decode(v) end
  return nil
end

local function need(key, kind, name)
  local v = get(key, name)
  if not v then notfound(kind, name) end
  return v
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function deep_equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function slot_from(p, current)
  local name = check_name('slot', p.name)
  if not valid_name(p.machine) then rule('INVALID_MACHINE', 'slot ' .. name .. ': machine ' .. show(p.machine) .. ' is not a valid name') end
  if not valid_ip(p.ip) then rule('INVALID_IP', 'slot ' .. name .. ': ip ' .. show(p.ip) .. ' must be an IP literal (nginx needs one)') end
  return {
    name = name, machine = p.machine, ip = p.ip,
    lmtp = check_port('slot ' .. name .. ': lmtp port', p.lmtp, 24),
    imap = check_port('slot ' .. name .. ': imap port', p.imap, 143),
    pop3 = check_port('slot ' .. name .. ': pop3 port', p.pop3, 110),
    state = check_enum('slot ' .. name .. ': state', SLOT_STATES, p.state or (current and current.state) or 'up'),
  }
end

-- slot name -> owning store, over every store except `except`
local function slot_owners(except)
  local owners, all = {}, redis.call('HGETALL', K_STORES)
  for i = 1, #all, 2 do
    if all[i] ~= except then
      for _, s in ipairs(cjson.decode(all[i + 1]).slots) do owners[s] = all[i] end
    end
  end
  return owners
end

local function store_of_slot(slot)
  return slot_owners(nil)[slot]
end

-- The store invariants: >= 2 slots, each existing, in no other store, on pairwise different machines;
-- both masters among them. `override` stands in for a slot being updated.
local function check_layout(store, override)
  local name = store.name
  if type(store.slots) ~= 'table' or #store.slots < 2 then rule('TOO_FEW_SLOTS', 'store ' .. name .. ' needs at least 2 slots') end
  local owners, machines, seen = slot_owners(name), {}, {}
  for _, s in ipairs(store.slots) do
    if type(s) ~= 'string' then rule('INVALID_NAME', 'store ' .. name .. ': slot names must be strings') end
    if seen[s] then rule('DUPLICATE_SLOT', 'store ' .. name .. ' lists slot ' .. s .. ' twice') end
    seen[s] = true
    local slot = (override and override.name == s) and override or get(K_SLOTS, s)
    if not slot then notfound('slot', s) end
    if owners[s] then rule('SLOT_IN_STORE', 'slot ' .. s .. ' already belongs to store ' .. owners[s]) end
    if machines[slot.machine] then
      rule('SAME_MACHINE', 'store ' .. name .. ': slots ' .. machines[slot.machine] .. ' and ' .. s .. ' are both on machine ' .. slot.machine)
    end
    machines[slot.machine] = s
  end
  if not seen[store.preferredMaster] then
    rule('MASTER_NOT_IN_STORE', 'store ' .. name .. ': preferredMaster ' .. show(store.preferredMaster) .. ' is not one of its slots')
  end
  if not seen[store.currentMaster] then
    rule('MASTER_NOT_IN_STORE', 'store ' .. name .. ': currentMaster ' .. show(store.currentMaster) .. ' is not one of its slots')
  end
end

local function count_users(store, delta)
  if store then redis.call('HINCRBY', K_USERCOUNT, store, delta) end
end

local function audit_view(e)
  if e == nil then return cjson.null end
  if e.passwordHash then
    local c = copy(e)
    c.passwordHash = '[set]'
    return c
  end
  return e
end

-- Writes `after` (nil: delete) under `name` in `key`, then bumps the version, audits and publishes.
-- Returns the script's reply. A no-op writes nothing.
local function finish(action, target, key, name, before, after)
  if deep_equal(before, after) then
    return { tonumber(redis.call('GET', K_VERSION) or '0'), after and cjson.encode(after) or '' }
  end
  local json = ''
  if after then
    json = cjson.encode(after)
    redis.call('HSET', key, name, json)
  else
    redis.call('HDEL', key, name)
  end
  local version = redis.call('INCR', K_VERSION)
  local t = redis.call('TIME')
  local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('LPUSH', K_HISTORY, cjson.encode({ version = version, at = at, actor = ACTOR, action = action,
    target = target, before = audit_view(before), after = audit_view(after) }))
  redis.call('LTRIM', K_HISTORY, 0, HISTORY_MAX - 1)
  redis.call('PUBLISH', CHANNEL, cjson.encode({ version = version, action = action, target = target }))
  return { version, json }
end

-- ---- script body follows
