--[[ failover: makes a slot of the store its current master; epoch + 1.
KEYS, ARGV[1..3], replies and error names: see common.lua.
ARGV[4] payload: { store, to? (default: the one replica that is up), expectedEpoch? (integer), force? (boolean) }
Checks, in this order (the compare-and-set first, so racing losers hear "conflict"):
  NOTFOUND store; SR_CONFLICT when expectedEpoch is given and differs; NO_ELIGIBLE_TARGET /
  AMBIGUOUS_TARGET without `to`; SLOT_NOT_IN_STORE; ALREADY_MASTER; TARGET_DOWN unless force. ]]
local name = P.store
local before = need(K_STORES, 'store', name)
local expected = P.expectedEpoch
if expected ~= nil then
  if type(expected) ~= 'number' or expected ~= math.floor(expected) then fail('ARG', 'expectedEpoch must be an integer') end
  if expected ~= before.epoch then
    fail('CONFLICT', expected .. ' ' .. before.epoch .. ' store ' .. name .. ': epoch is ' .. before.epoch ..
      ', expected ' .. expected .. ' (another failover happened)')
  end
end
if P.force ~= nil and type(P.force) ~= 'boolean' then fail('ARG', 'force must be a boolean') end
local to = P.to
if to == nil then
  local eligible = {}
  for _, s in ipairs(before.slots) do
    if s ~= before.currentMaster then
      local slot = get(K_SLOTS, s)
      if slot and slot.state == 'up' then eligible[#eligible + 1] = s end
    end
  end
  if #eligible == 0 then rule('NO_ELIGIBLE_TARGET', 'store ' .. name .. ': no replica is up; name a target and force') end
  if #eligible > 1 then rule('AMBIGUOUS_TARGET', 'store ' .. name .. ': replicas ' .. table.concat(eligible, ', ') .. ' are up; name the target') end
  to = eligible[1]
end
local member = false
for _, s in ipairs(before.slots) do if s == to then member = true end end
if not member then rule('SLOT_NOT_IN_STORE', 'slot ' .. show(to) .. ' is not a slot of store ' .. name) end
if to == before.currentMaster then rule('ALREADY_MASTER', 'slot ' .. to .. ' is already the current master of store ' .. name) end
local target = need(K_SLOTS, 'slot', to)
if target.state ~= 'up' and P.force ~= true then
  rule('TARGET_DOWN', 'store ' .. name .. ': target slot ' .. to .. ' is ' .. target.state .. '; use force to fail over anyway')
end
local after = copy(before)
after.currentMaster = to
after.epoch = before.epoch + 1
return finish('failover', 'store:' .. name, K_STORES, name, before, after)
