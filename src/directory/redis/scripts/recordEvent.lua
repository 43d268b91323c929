--[[ recordEvent (sr_recordEvent_v<N>, src/directory/redis/index.ts): appends one audit record for
something done outside the layout (a slot agent's repair or operation) at the directory's current
version, which it does not change. Publishes nothing: no entry changed, no cache has anything to drop.

  KEYS[1] version    string: the directory version (read only; 0 when nothing was ever written)
  KEYS[2] history    list: audit record JSON, newest first, capped (LPUSH + LTRIM)
  ARGV[1] historyMax audit records kept (integer >= 1)
  ARGV[2] body       the record as a JSON object without `version` and `at`: the script adds both,
                     so the record carries the version and the Redis time of its append.
                     actor, action and target: strings of 1-200 bytes; before, after, detail: any JSON
Returns { version, at }: the version recorded at, and the time in epoch milliseconds.
Errors (mapped to typed errors in src/directory/redis/errors.ts):
  SR_ARG <text>                malformed call (a bug in the caller)
  SR_RULE INVALID_ACTOR <text> actor missing, empty or longer than 200 bytes
  SR_RULE INVALID_EVENT <text> action or target missing, empty or longer than 200 bytes

The body is spliced in as text rather than decoded and encoded again: cjson turns an empty array
in the detail into `{}`, and the history must show what the recorder wrote.
]]
local function fail(kind, detail) error({ err = 'SR_' .. kind .. ' ' .. detail }) end

if #KEYS ~= 2 then fail('ARG', 'expected 2 keys, got ' .. #KEYS) end
local max = tonumber(ARGV[1])
if not max or max < 1 or max ~= math.floor(max) then fail('ARG', 'historyMax must be an integer >= 1') end
local body = ARGV[2] or ''
local decoded, e = pcall(cjson.decode, body)
if not decoded or type(e) ~= 'table' or body:sub(1, 1) ~= '{' or body:sub(2, 2) == '}' then
  fail('ARG', 'body must be a non-empty JSON object')
end
if e.version ~= nil or e.at ~= nil then fail('ARG', 'body must not carry version or at') end

local function text(v) return type(v) == 'string' and #v >= 1 and #v <= 200 end
if not text(e.actor) then fail('RULE', 'INVALID_ACTOR actor must be a non-empty string of at most 200 characters') end
if not text(e.action) then fail('RULE', 'INVALID_EVENT event action must be a non-empty string of at most 200 characters') end
if not text(e.target) then fail('RULE', 'INVALID_EVENT event target must be a non-empty string of at most 200 characters') end

local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('LPUSH', KEYS[2], string.format('{"version":%d,"at":%d,', version, at) .. body:sub(2))
redis.call('LTRIM', KEYS[2], 0, max - 1)
return { version, at }
