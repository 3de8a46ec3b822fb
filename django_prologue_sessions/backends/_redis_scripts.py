"""The Lua scripts of the Redis engine: each write is one atomic round trip.

A session is a Redis hash, laid out as the ``redis`` engine module says: a
field name starts with ``\\x00`` (reserved), ``\\x01`` (a serialized value) or
is a plain key holding a string. A logged-in user's sessions are also members
of that user's index, a sorted set scored by when each expires (in Redis's own
clock, so that pruning the expired ones never drops a live one).

Each script is sent with EVALSHA, and with EVAL only when the server answers
NOSCRIPT (after a restart or SCRIPT FLUSH): two round trips once, then one.
redis-py's ``Script`` would make that three (EVALSHA, SCRIPT LOAD, EVALSHA).

Every key a script is given hashes to one Redis Cluster slot: a session's
hash tag is the first 8 characters of its key, which for a user's session are
the user's tag, the hash tag of that user's index too. The write scripts get
all their keys in ``KEYS``. The list and revoke scripts reach a user's
sessions through the index (``KEYS[1]``): each member's hash is named by the
index's own hash tag, so it lies in the same slot, which Redis Cluster allows
although those keys are not declared (the keys are not known before the
index is read, and reading it first would let a session slip through between
the two round trips).
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

# Score a member by when it expires in Redis's clock (milliseconds) and keep
# the index at least as long as the session. A new member first drops those
# that have expired (only a new member grows the index, and pruning costs as
# much as the rest). An index whose last member is removed vanishes with it.
_INDEX_SESSION = """
local function index_session(index, member, ttl, prune)
  local now = redis.call('TIME')
  local ms = now[1] * 1000 + math.floor(now[2] / 1000)
  if prune then
    redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. ms)
  end
  redis.call('ZADD', index, ms + ttl * 1000, member)
  if redis.call('TTL', index) < ttl then
    redis.call('EXPIRE', index, ttl)
  end
end
"""

CREATE = LuaScript(
    _SLICED_CALLS
    + _INDEX_SESSION
    + """
-- KEYS: the session, then its user's index if it has a user.
-- ARGV: ttl, (with an index) the session key, then field, value pairs (the
-- reserved ones included).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[1])
local first = 2
if KEYS[2] then
  first = 3
end
call_sliced('HSET', KEYS[1], first, #ARGV, 1000)
redis.call('EXPIRE', KEYS[1], ttl)
if KEYS[2] and ttl > 0 then
  index_session(KEYS[2], ARGV[2], ttl, true)
end
return 1
"""
)
"""Create the session only if its key is free: 1 if created, 0 on a clash."""

UPDATE = LuaScript(
    _SLICED_CALLS
    + _INDEX_SESSION
    + """
-- KEYS: the session, then (if it has or had a user) that user's index.
-- ARGV: ttl, mode, n, then (with an index) 'a' (add) or 'r' (remove) and the
-- session key, then n field/value pairs to set, then fields to delete.
-- mode 'r' (replace) first deletes every user field: the caller never saw them.
local ttl = tonumber(ARGV[1])
local first = 4
if KEYS[2] then
  first = 6
  if ARGV[4] == 'r' or ttl <= 0 then
    redis.call('ZREM', KEYS[2], ARGV[5])
  end
end
if ttl <= 0 then
  return redis.call('DEL', KEYS[1])  -- expired already
end
if redis.call('EXPIRE', KEYS[1], ttl) == 0 then
  return 0  -- gone: deleted, flushed or expired meanwhile
end
if ARGV[2] == 'r' then
  for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.byte(name, 1) ~= 0 then
      redis.call('HDEL', KEYS[1], name)
    end
  end
end
local last_set = first - 1 + 2 * tonumber(ARGV[3])
call_sliced('HDEL', KEYS[1], last_set + 1, #ARGV, 1000)
call_sliced('HSET', KEYS[1], first, last_set, 1000)
if KEYS[2] and ARGV[4] == 'a' then
  index_session(KEYS[2], ARGV[5], ttl, false)
end
return 1
"""
)
"""Update a session only if it still exists: 1 if updated, 0 if it is gone.

Only the fields that changed since the session was loaded are sent, so two
requests that change different keys of one session keep both changes.
"""

DELETE = LuaScript(
    """
-- KEYS: the session and its user's index. ARGV: the session key.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('UNLINK', KEYS[1])
"""
)
"""Delete a user's session and take it out of the index: 1 if it existed."""

# The user's sessions named by the index. A member is a session key; its hash
# is ARGV[1] (the prefix and the index's hash tag) followed by the key's
# characters after the 8 of the tag. It is the user's if its "\0u" field
# holds the user id: a member that is not (deleted, expired, now another
# user's) is removed from the index.
_OWNED = """
local index, head, user = KEYS[1], ARGV[1], ARGV[2]
local function hash_of(member)
  return head .. string.sub(member, 9)
end
local function owned(key)
  return redis.call('HGET', key, '\\0u') == user
end
"""

LIST = LuaScript(
    _OWNED
    + """
-- KEYS: a user's index. ARGV: the hash name's head, the user id.
-- Returns key, created, last saved, milliseconds left, for each of the user's
-- live sessions; drops the other members.
local found = {}
for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local key = hash_of(member)
  local meta = redis.call('HMGET', key, '\\0u', '\\0c', '\\0s')
  if meta[1] == user then
    found[#found + 1] = member
    found[#found + 1] = meta[2] or ''
    found[#found + 1] = meta[3] or ''
    found[#found + 1] = redis.call('PTTL', key)
  else
    redis.call('ZREM', index, member)
  end
end
return found
"""
)
"""List a user's live sessions, pruning the index of the rest."""

REVOKE = LuaScript(
    _OWNED
    + """
-- KEYS: a user's index. ARGV: the hash name's head, the user id, the key to
-- keep ('' for none), then the session keys to end; with none, every member.
-- Returns how many live sessions of the user it deleted.
local keep = ARGV[3]
local ended = 0
local function revoke(member)
  if member ~= keep then
    local key = hash_of(member)
    if owned(key) then
      ended = ended + redis.call('UNLINK', key)
    end
    redis.call('ZREM', index, member)
  end
end
if #ARGV > 3 then
  for i = 4, #ARGV do
    revoke(ARGV[i])
  end
else
  for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    revoke(member)
  end
end
return ended
"""
)
"""Delete a user's sessions (all, or the given ones) but one: how many ended.

A session is deleted only if it is the user's (its ``\\0u`` field), so a key
of another user's session is left alone, and so is ``keep``.
"""
