//! The Lua scripts the store runs in Redis, each one atomic: taking a sequence number and
//! switching `current` to a new version.

#[cfg(doc)]
use crate::keys::Keys;

/// Takes the next sequence number: past the stored counter and at least the caller's
/// clock (`ARGV[1]`, Unix ms), so a counter lost in a failover, or with Redis's data, can
/// never hand out a number again.
pub(super) const NEXT_SEQ_SCRIPT: &str = r"
local stored = tonumber(redis.call('GET', KEYS[1])) or 0
local next = math.max(stored + 1, tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.0f', next))
return next
";

/// Makes a version current. Its keys' names come from [`Keys`]: the new version's as
/// `KEYS`, every other version's built from the version key prefix and the suffixes.
pub(super) const SWITCH_SCRIPT: &str = r"
-- KEYS: current, versions, then the keys the new version must have (metadata first)
-- ARGV: meta json, seq, version, version key prefix, retained count, previous ttl (s), force,
--       then the suffix of each key a version may have (Keys::version_suffixes)
local current = redis.call('GET', KEYS[1])
if current and ARGV[7] ~= '1' then
  local ok, decoded = pcall(cjson.decode, current)
  local seq = ok and tonumber(decoded['seq'])
  if seq and seq >= tonumber(ARGV[2]) then return seq end
end
local new_keys = {unpack(KEYS, 3)}
if redis.call('EXISTS', unpack(new_keys)) ~= #new_keys then
  return redis.error_reply('ERR bodies of version ' .. ARGV[3] .. ' are missing')
end
local suffixes = {unpack(ARGV, 8)}
redis.call('SET', KEYS[1], ARGV[1])
for _, s in ipairs(suffixes) do redis.call('PERSIST', ARGV[4] .. ARGV[3] .. s) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
local drop = #members - tonumber(ARGV[5])
for i, v in ipairs(members) do
  if v ~= ARGV[3] then
    local base = ARGV[4] .. v
    if i <= drop then
      for _, s in ipairs(suffixes) do redis.call('DEL', base .. s) end
      redis.call('ZREM', KEYS[2], v)
    else
      for _, s in ipairs(suffixes) do
        if redis.call('TTL', base .. s) == -1 then redis.call('EXPIRE', base .. s, ARGV[6]) end
      end
    end
  end
end
return 0
";
