"""The Lua scripts of the Redis engine: each write is one atomic round trip.

A session is one Redis string, laid out as ``layout`` says: a decimal
version, a header a logged-in session has when the user index is on
(``@<created>,<saved>,<indexed until>,<length>:<user id>``), then a format
letter and the session. A logged-in user's sessions are also members of that
user's index, a sorted set scored by when each entry expires (in Redis's own
clock, so that pruning the expired ones never drops a live session): at
``index_ttl`` seconds from the write, which is never before the session
expires.

A session without a user is created with a plain ``SET NX EX``, and a save
that leaves the index alone is a plain ``SET ... IFEQ`` where the server has
it (``store``); the scripts create a logged-in session with its index entry,
save (only if the version read is still there) on servers without ``IFEQ``
or when the index changes, re-key, push a session's expiry back with its
index entry's when the entry would not outlive it (the idle timeout's
slide), delete, list and revoke.

Each script is sent with EVALSHA, and with EVAL only when the server answers
NOSCRIPT (after a restart or SCRIPT FLUSH): two round trips once, then one.
redis-py's ``Script`` would make that three (EVALSHA, SCRIPT LOAD, EVALSHA).

A script's ``ARGV`` starts with fixed arguments, named by ``LuaScript.head``
and read by name in the script's first lines (``local ttl =
tonumber(ARGV[1])``); a variable part follows. ``LuaScript.argv()`` puts named
values in that order, and a test reads the Lua side's names to check that the
two agree.

Every key a script is given hashes to one Redis Cluster slot: a session's
hash tag is the first 8 characters of its key, which for a user's session are
the user's tag, the hash tag of that user's index too. The write scripts get
all their keys in ``KEYS``. The list and revoke scripts reach a user's
sessions through the index (``KEYS[1]``): each member's key is named by the
index's own hash tag, so it lies in the same slot, which Redis Cluster allows
although those keys are not declared (the keys are not known before the
index is read, and reading it first would let a session slip through between
the two round trips).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LuaScript:
    source: str
    #: The names of the fixed arguments, ``ARGV[1]`` first.
    head: tuple[str, ...] = ()
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def argv(self, rest: Iterable[Any] = (), **named: Any) -> list[Any]:
        """The named arguments in the order of ``head``, then ``rest``."""
        if named.keys() != set(self.head):
            raise TypeError(f"{sorted(named)} are not the arguments {self.head}")
        args = [named[name] for name in self.head]
        args.extend(rest)
        return args

    def with_deadline(self, args: list[Any], not_after: int) -> list[Any]:
        """``args`` with ``not_after`` set, if this script takes a deadline."""
        if "not_after" not in self.head:
            return args
        args = list(args)
        args[self.head.index("not_after")] = not_after
        return args


# A write that carries a deadline (its ``not_after``, in milliseconds of
# Redis's clock; 0 for none) is refused past it, before it changes anything,
# with Redis's time as a one-element array: by then its client has given up
# on the reply and reported that the write failed. Redis runs what is in its
# sockets when it resumes from a pause (a long fork(), a swap storm,
# SIGSTOP), such a write included.
_DEADLINE = """
if not_after > 0 then
  local clock = redis.call('TIME')
  local ms = clock[1] * 1000 + math.floor(clock[2] / 1000)
  if ms > not_after then
    return {ms}
  end
end
"""


# Score a member by when its entry expires in Redis's clock (milliseconds),
# ttl seconds from now, and keep the index at least as long. A new member
# first drops those that have expired (only a new member grows the index,
# and pruning costs as much as the rest). An index whose last member is
# removed vanishes with it.
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
    """
local ttl = tonumber(ARGV[1])
local member = ARGV[2]
local value = ARGV[3]
local index_ttl = tonumber(ARGV[4])
local not_after = tonumber(ARGV[5])
-- KEYS: the session, then its user's index (member, the session key, is
-- its entry there, for index_ttl seconds).
"""
    + _INDEX_SESSION
    + _DEADLINE
    + """
if ttl > 0 then
  if not redis.call('SET', KEYS[1], value, 'NX', 'EX', ttl) then
    return 0
  end
elseif redis.call('SET', KEYS[1], value, 'NX') then
  redis.call('EXPIRE', KEYS[1], ttl)  -- expired already: deleted at once
else
  return 0
end
if KEYS[2] and ttl > 0 then
  index_session(KEYS[2], member, index_ttl, true)
end
return 1
""",
    head=("ttl", "member", "value", "index_ttl", "not_after"),
)
"""Create the session only if its key is free and only before ``not_after``:
1 if created, 0 on a clash, ``[Redis's time]`` if too late."""

UPDATE = LuaScript(
    """
local ttl = tonumber(ARGV[1])
local expected = ARGV[2]
local unversioned = ARGV[3]
local index_op = ARGV[4]
local member = ARGV[5]
local index_ttl = tonumber(ARGV[6])
-- KEYS: the session, then (if it has or had a user) that user's index.
-- expected: the version the caller read ('' when it read none and replaces
-- the session); unversioned: the value after the version. index_op 'a' adds (or
-- refreshes) member, the session key, in the index for index_ttl seconds;
-- 'r' removes it; '' leaves the index alone.
"""
    + _INDEX_SESSION
    + """
local current = redis.call('GET', KEYS[1])
if not current then
  if KEYS[2] then
    redis.call('ZREM', KEYS[2], member)
  end
  return 0  -- gone: deleted, flushed or expired meanwhile
end
if ttl <= 0 then
  if KEYS[2] then
    redis.call('ZREM', KEYS[2], member)
  end
  return -redis.call('DEL', KEYS[1])  -- expired already
end
local version = string.match(current, '^%d+') or ''
if expected ~= '' and version ~= expected then
  return current  -- changed meanwhile: the caller merges and tries again
end
version = tostring((tonumber(version) or 0) + 1)
redis.call('SET', KEYS[1], version .. unversioned, 'EX', ttl)
if KEYS[2] then
  if index_op == 'a' then
    index_session(KEYS[2], member, index_ttl, false)
  elseif index_op == 'r' then
    redis.call('ZREM', KEYS[2], member)
  end
end
return tonumber(version)
""",
    head=("ttl", "expected", "unversioned", "index_op", "member", "index_ttl"),
)
"""Save a session only if it still exists and, unless ``expected`` is '', if
its version is the one read: the new version if saved, 0 if it is gone, -1
if deleted because it has expired, or the stored value if it changed meanwhile.

The value is written whole; on a conflict the caller re-applies its own
changes (the keys it changed only) to the value returned, and sends again,
so two requests that change different keys of one session keep both changes.
"""

RENAME = LuaScript(
    """
local member = ARGV[1]
local new_member = ARGV[2]
local now = ARGV[3]
local ttl = tonumber(ARGV[4])
local index_ttl = tonumber(ARGV[5])
local indexed_until = ARGV[6]
local not_after = tonumber(ARGV[7])
-- KEYS: a user's session, the name it moves to, and the user's index (if
-- the index is on), where member and new_member, the old and the new session
-- key, are its entries. Both names carry the same hash tag. Under its new
-- key the session counts as created and saved at now, and expires in ttl;
-- its index entry lasts index_ttl seconds, until indexed_until (as the
-- header says, layout.restamp()). Past not_after the client has kept the
-- old key: nothing moves.
"""
    + _INDEX_SESSION
    + _DEADLINE
    + """
local current = redis.call('GET', KEYS[1])
if not current then
  return 0  -- ended meanwhile (a logout, "log out everywhere") or expired
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1  -- the new key is taken: try another
end
local version, tail = string.match(current, '^(%d+)@%d+,%d+,%d+,(.*)$')
if version then
  current = version .. '@' .. now .. ',' .. now .. ',' .. indexed_until .. ',' .. tail
end
redis.call('SET', KEYS[2], current, 'EX', ttl)
redis.call('UNLINK', KEYS[1])
if KEYS[3] then
  redis.call('ZREM', KEYS[3], member)
  index_session(KEYS[3], new_member, index_ttl, false)
end
return 1
""",
    head=(
        "member",
        "new_member",
        "now",
        "ttl",
        "index_ttl",
        "indexed_until",
        "not_after",
    ),
)
"""Give a logged-in session a new key, only while it exists and only before
``not_after``: 1 if moved, 0 if it has ended, -1 if the new key is taken,
``[Redis's time]`` if too late. Its value moves with it.

Without the deadline, a re-key whose client had already reported it failed,
and kept the old cookie, would move the session to a key no client holds
when a paused Redis resumes."""

TOUCH = LuaScript(
    """
local ttl = tonumber(ARGV[1])
local member = ARGV[2]
local outlast = tonumber(ARGV[3])
local index_ttl = tonumber(ARGV[4])
-- KEYS: a user's session and the user's index, where member is its entry.
-- An entry that lasts outlast seconds more is left alone; any other is made
-- to last index_ttl seconds, or longer if it already does.
if redis.call('EXPIRE', KEYS[1], ttl) == 0 then
  return 0  -- ended meanwhile: no entry to refresh
end
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local score = redis.call('ZSCORE', KEYS[2], member)
if score and tonumber(score) >= ms + outlast * 1000 then
  return 1
end
redis.call('ZADD', KEYS[2], 'GT', ms + index_ttl * 1000, member)
if redis.call('TTL', KEYS[2]) < index_ttl then
  redis.call('EXPIRE', KEYS[2], index_ttl)
end
return 1
""",
    head=("ttl", "member", "outlast", "index_ttl"),
)
"""Push a user's session's expiry back to ``ttl`` (the idle timeout's slide)
and, if its index entry would not outlast it, the entry's to ``index_ttl``,
never sooner than it was: 1 if done, 0 if the session has ended. The value
is not rewritten, so its header's "indexed until" may fall behind the entry,
never ahead of it: a later save then writes the index when it need not,
never skips it when it must. The script reads the entry's own score, so a
stale header costs it no writes. A slide that the header shows the entry
outlasts is a bare ``EXPIRE`` (``store``)."""

DELETE = LuaScript(
    """
local member = ARGV[1]
-- KEYS: the session and its user's index, where member is its entry.
redis.call('ZREM', KEYS[2], member)
return redis.call('UNLINK', KEYS[1])
""",
    head=("member",),
)
"""Delete a user's session and take it out of the index: 1 if it existed."""

LEAVE = LuaScript(
    """
local not_after = tonumber(ARGV[1])
-- KEYS: the session that a re-key of an anonymous session leaves behind.
"""
    + _DEADLINE
    + """
return redis.call('UNLINK', KEYS[1])
""",
    head=("not_after",),
)
"""Delete the key an anonymous session's re-key leaves, only before
``not_after``: 1 if it existed, ``[Redis's time]`` if too late. A re-key
that timed out so leaves the session where it was, with what it holds."""

# The user's sessions named by the index. A member is a session key; its
# key is head (the prefix and the index's hash tag) followed by the key's
# characters after the 8 of the tag. It is the user's if its header names
# the user: a member that is not (deleted, expired, now another user's) is
# removed from the index. REVOKE reads only the start of the value, where
# the header is; LIST reads the whole value, for the client to decode.
_OWNED = """
local index = KEYS[1]
local function key_of(member)
  return head .. string.sub(member, 9)
end
local function header_of(start)
  if not start then
    return nil
  end
  local created, saved, length, at =
    string.match(start, '^%d+@(%d+),(%d+),%d+,(%d+):()')
  if not created or tonumber(length) ~= #user then
    return nil
  end
  if string.sub(start, at, at + #user - 1) ~= user then
    return nil
  end
  return created, saved
end
local function header(key)
  return header_of(redis.call('GETRANGE', key, 0, 79 + #user))
end
"""

LIST = LuaScript(
    """
local head = ARGV[1]
local user = ARGV[2]
-- KEYS: a user's index. head: how each session's key starts; user: the user
-- id. Returns key, created, last saved, milliseconds left and the value, for
-- each of the user's live sessions; drops the other members.
"""
    + _OWNED
    + """
local found = {}
for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local key = key_of(member)
  local value = redis.call('GET', key)
  local created, saved = header_of(value)
  if created then
    found[#found + 1] = member
    found[#found + 1] = created
    found[#found + 1] = saved
    found[#found + 1] = redis.call('PTTL', key)
    found[#found + 1] = value
  else
    redis.call('ZREM', index, member)
  end
end
return found
""",
    head=("head", "user"),
)
"""List a user's live sessions with their values, pruning the index of the
rest. Listing is rare, and the session's data is what tells the sessions
apart (``activity``)."""

REVOKE = LuaScript(
    """
local head = ARGV[1]
local user = ARGV[2]
local keep = ARGV[3]
-- KEYS: a user's index. head: how each session's key starts; user: the user
-- id; keep: the key to keep ('' for none). After the head: the session keys
-- to end; with none, every member. Returns how many live sessions of the
-- user it deleted.
"""
    + _OWNED
    + """
local ended = 0
local function revoke(member)
  if member ~= keep then
    local key = key_of(member)
    if header(key) then
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
""",
    head=("head", "user", "keep"),
)
"""Delete a user's sessions (all, or the given ones) but one: how many ended.

A session is deleted only if it is the user's (its header names the user),
so a key of another user's session is left alone, and so is ``keep``.
"""

#: Every script, for the test that checks each against its head.
SCRIPTS = {
    "CREATE": CREATE,
    "UPDATE": UPDATE,
    "RENAME": RENAME,
    "TOUCH": TOUCH,
    "DELETE": DELETE,
    "LEAVE": LEAVE,
    "LIST": LIST,
    "REVOKE": REVOKE,
}
