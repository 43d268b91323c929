--[[
  record-failure (registered as sr_recordFailure_v<N>, auth/throttle-redis.ts): count one failed
  login for a client IP and a login name.

  KEYS[1]  failure counter of the client IP    (<prefix>{auth}:fail:ip:<ip>, core/redis-keys.ts)
  KEYS[2]  failure counter of the login name   (<prefix>{auth}:fail:user:<name>)
  ARGV[1]  window in milliseconds (integer >= 1); every failure restarts both windows

  Returns  { ipCount, userCount } after the increment.
  Errors   "ERR_BAD_WINDOW" when ARGV[1] is not a positive integer.

  INCR then PEXPIRE inside one script: atomic, so a counter never lives without its expiry.
]]
local window = tonumber(ARGV[1])
if not window or window < 1 or window ~= math.floor(window) then
  return redis.error_reply('ERR_BAD_WINDOW')
end
local ip = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], window)
local user = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], window)
return { ip, user }
