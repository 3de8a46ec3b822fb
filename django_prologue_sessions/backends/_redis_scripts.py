"""The Lua scripts of the Redis engine: each write is one atomic round trip.

A session is a Redis hash, laid out as the ``redis`` engine module says: a
field name starts with ``\\x00`` (reserved), ``\\x01`` (a serialized value) or
is a plain key holding a string.

Each script is sent with EVALSHA, and with EVAL only when the server answers
NOSCRIPT (after a restart or SCRIPT FLUSH): two round trips once, then one.
redis-py's ``Script`` would make that three (EVALSHA, SCRIPT LOAD, EVALSHA).
Every script touches only ``KEYS[1]``, so each runs on a Redis Cluster too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# Lua's unpack() puts every argument on the C stack, which holds about 8000:
# write a huge session in slices.
_SLICED_CALLS = """
local function call_sliced(command, key, first, last, step)
  local i = first
  while i <= last do
    local j = math.min(i + step - 1, last)
    redis.call(command, key, unpack(ARGV, i, j))
    i = j + 1
  end
end
"""

CREATE = LuaScript(
    _SLICED_CALLS
    + """
-- ARGV: ttl, then field, value pairs (the reserved ones included).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
call_sliced('HSET', KEYS[1], 2, #ARGV, 1000)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
)
"""Create the session only if its key is free: 1 if created, 0 on a clash."""

UPDATE = LuaScript(
    _SLICED_CALLS
    + """
-- ARGV: ttl, mode, n, then n field/value pairs to set, then fields to delete.
-- mode 'r' (replace) first deletes every user field: the caller never saw them.
if tonumber(ARGV[1]) <= 0 then
  return redis.call('DEL', KEYS[1])  -- expired already
end
if redis.call('EXPIRE', KEYS[1], ARGV[1]) == 0 then
  return 0  -- gone: deleted, flushed or expired meanwhile
end
if ARGV[2] == 'r' then
  for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.byte(name, 1) ~= 0 then
      redis.call('HDEL', KEYS[1], name)
    end
  end
end
local last_set = 3 + 2 * tonumber(ARGV[3])
call_sliced('HDEL', KEYS[1], last_set + 1, #ARGV, 1000)
call_sliced('HSET', KEYS[1], 4, last_set, 1000)
return 1
"""
)
"""Update a session only if it still exists: 1 if updated, 0 if it is gone.

Only the fields that changed since the session was loaded are sent, so two
requests that change different keys of one session keep both changes.
"""
