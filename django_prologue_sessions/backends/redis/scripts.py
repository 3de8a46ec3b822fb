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
slide), delete, list and revoke. Listing and revoking go a page at a time
(``PAGE`` members per call, the client asking for the next), and a login
ends the user's sessions past ``max_sessions_per_user``, so that no script
holds Redis for long, however many sessions a user has.

Each script is sent with EVALSHA, and with EVAL only when the server answers
NOSCRIPT (after a restart or SCRIPT FLUSH): two round trips once, then one.
redis-py's ``Script`` would make that three (EVALSHA, SCRIPT LOAD, EVALSHA).

A script's ``ARGV`` starts with fixed arguments, named by ``LuaScript.head``
and read by name in the script's first lines (``local ttl =
tonumber(ARGV[1])``); a variable part follows. ``LuaScript.argv()`` puts named
values in that order, and a test reads the Lua side's names to check that the
two agree.

Every key a script is given hashes to one Redis Cluster slot: a session's
hash tag is the first 8 characters of its id (those of its session key),
which for a user's session are the user's tag, the hash tag of that user's
index too. A member of an index is the rest of a session's id: no script
ever sees a session key. The write scripts get all their keys in ``KEYS``.
The list and revoke scripts reach a user's sessions through the index
(``KEYS[1]``): each member's key is named by the index's own hash tag, so it
lies in the same slot, which Redis Cluster allows although those keys are
not declared (the keys are not known before the index is read, and reading
it first would let a session slip through between the two round trips).
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


#: The most members a script reads from a user's index in one call: a page
#: of the user's sessions costs Redis under a millisecond on average
#: (``bench/per_user.py``), so that other clients never wait long.
PAGE = 100
#: The most bytes of values one LIST page returns (after the value that
#: passes it), so that a page of large sessions is a page of few.
PAGE_BYTES = 1 << 20
_PAGING = f"""
local PAGE = {PAGE}
local PAGE_BYTES = {PAGE_BYTES}
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

# The user's sessions named by the index (``index``, which the script sets).
# A member is a session's id after its tag; its key is head (the prefix and
# the index's hash tag) followed by the member. A member of the older layout
# (a whole session key) names no key, and goes. It is the user's if its
# header names the user: a member that is not (deleted, expired, now another
# user's) is removed from the index. Only the start of the value is read,
# where the header is, unless the value is wanted.
_OWNED = """
local function key_of(member)
  return head .. member
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

CREATE = LuaScript(
    """
local ttl = tonumber(ARGV[1])
local member = ARGV[2]
local value = ARGV[3]
local index_ttl = tonumber(ARGV[4])
local not_after = tonumber(ARGV[5])
local head = ARGV[6]
local user = ARGV[7]
local max_sessions = tonumber(ARGV[8])
-- KEYS: the session, then its user's index (member, the session's id after
-- its tag, is its entry there, for index_ttl seconds; head and user as for
-- LIST). Past max_sessions members, the user's sessions whose entries expire
-- soonest end, at most a page of them, never the new one.
local index = KEYS[2]
"""
    + _PAGING
    + _INDEX_SESSION
    + _DEADLINE
    + _OWNED
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
if index and ttl > 0 then
  index_session(index, member, index_ttl, true)
  local extra = math.min(redis.call('ZCARD', index) - max_sessions, PAGE)
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', index, 0, extra)) do
      if extra > 0 and old ~= member then
        local key = key_of(old)
        if header(key) then
          redis.call('UNLINK', key)
        end
        redis.call('ZREM', index, old)
        extra = extra - 1
      end
    end
  end
end
return 1
""",
    head=(
        "ttl",
        "member",
        "value",
        "index_ttl",
        "not_after",
        "head",
        "user",
        "max_sessions",
    ),
)
"""Create the session only if its key is free and only before ``not_after``:
1 if created, 0 on a clash, ``[Redis's time]`` if too late. A logged-in
session's creation (a login) ends its user's oldest sessions past
``max_sessions``."""

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
-- refreshes) member, the session's id after its tag, in the index for
-- index_ttl seconds; 'r' removes it; '' leaves the index alone.
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
-- the index is on), where member and new_member, from the old and the new
-- session id, are its entries. Both names carry the same hash tag. Under its
-- new key the session counts as created and saved at now, and expires in
-- ttl; its index entry lasts index_ttl seconds, until indexed_until (as the
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
CHANGE = LuaScript(
    """
local expected = ARGV[1]
local unversioned = ARGV[2]
-- KEYS: a session. expected: the version read; unversioned: the value
-- after the version. The TTL, and so the index entry's score, stay as they
-- are: a change made from outside the session's requests neither prolongs
-- it nor counts as a visit.
local current = redis.call('GET', KEYS[1])
if not current then
  return 0  -- ended meanwhile: it stays ended
end
local version = string.match(current, '^%d+') or ''
if version ~= expected then
  return current  -- saved meanwhile: the caller changes this and tries again
end
version = tostring(tonumber(version) + 1)
redis.call('SET', KEYS[1], version .. unversioned, 'KEEPTTL')
return tonumber(version)
""",
    head=("expected", "unversioned"),
)
"""Change a session from outside its requests (``flash_user()``), only if it
still exists at the version read: the new version if changed, 0 if it has
ended, or the stored value if it was saved meanwhile. A request that saves
the session afterwards meets the new version, and merges as with any
concurrent save."""

LIST = LuaScript(
    """
local head = ARGV[1]
local user = ARGV[2]
local after = ARGV[3]
local after_score = ARGV[4]
local values = ARGV[5]
-- KEYS: a user's index. head: how each session's key starts; user: the user
-- id; after, after_score: the member the previous page ended with and its
-- score ('' for the first page); values: '1' to return each value, else ''.
-- One page: at most PAGE members, and values of PAGE_BYTES in all. Returns
-- the member and score to start the next page after ('' when none is left),
-- then member, created, last saved, milliseconds left and the value, for
-- each of the user's live sessions; drops the other members.
local index = KEYS[1]
"""
    + _PAGING
    + _OWNED
    + """
local start = 0
if after ~= '' then
  if redis.call('ZSCORE', index, after) == after_score then
    start = redis.call('ZRANK', index, after) + 1
  else
    -- saved (a later score) or gone meanwhile: from the first member that
    -- could follow it; the client drops members it has seen
    start = redis.call('ZCOUNT', index, '-inf', '(' .. after_score)
  end
end
local page = redis.call('ZRANGE', index, start, start + PAGE, 'WITHSCORES')
local found = {'', ''}
local bytes = 0
for i = 1, math.min(#page, 2 * PAGE), 2 do
  local member = page[i]
  local key = key_of(member)
  local value
  if values == '1' then
    value = redis.call('GET', key)
  else
    value = redis.call('GETRANGE', key, 0, 79 + #user)
  end
  local created, saved = header_of(value)
  if created then
    found[#found + 1] = member
    found[#found + 1] = created
    found[#found + 1] = saved
    found[#found + 1] = redis.call('PTTL', key)
    found[#found + 1] = values == '1' and value or ''
    bytes = bytes + #value
  else
    redis.call('ZREM', index, member)
  end
  if i + 1 < #page and (i == 2 * PAGE - 1 or bytes >= PAGE_BYTES) then
    found[1], found[2] = member, page[i + 1]
    break
  end
end
return found
""",
    head=("head", "user", "after", "after_score", "values"),
)
"""List a page of a user's live sessions, with their values if asked (the
session's data is what tells the sessions apart, ``activity``), pruning the
index of the rest. The client asks for the next page until none is left."""

REVOKE = LuaScript(
    """
local head = ARGV[1]
local user = ARGV[2]
local keep = ARGV[3]
-- KEYS: a user's index. head: how each session's key starts; user: the user
-- id; keep: the member to keep ('' for none). After the head: the members
-- to end, at most PAGE; with none, the first PAGE members. Returns how many
-- live sessions of the user it deleted, then 1 if members other than keep
-- are left to end (with no members given), else 0.
local index = KEYS[1]
"""
    + _PAGING
    + _OWNED
    + """
-- One UNLINK and one ZREM for the page: a call costs Redis about as much
-- as a command of its own.
local keys, members = {}, {}
local function revoke(member)
  if member ~= keep then
    local key = key_of(member)
    if header(key) then
      keys[#keys + 1] = key
    end
    members[#members + 1] = member
  end
end
local function finish()
  local ended = 0
  if #keys > 0 then
    ended = redis.call('UNLINK', unpack(keys))
  end
  if #members > 0 then
    redis.call('ZREM', index, unpack(members))
  end
  return ended
end
if #ARGV > 3 then
  for i = 4, #ARGV do
    revoke(ARGV[i])
  end
  return {finish(), 0}
end
for _, member in ipairs(redis.call('ZRANGE', index, 0, PAGE)) do
  revoke(member)
end
local ended = finish()
local left = redis.call('ZCARD', index)
if keep ~= '' and redis.call('ZSCORE', index, keep) then
  left = left - 1
end
return {ended, left > 0 and 1 or 0}
""",
    head=("head", "user", "keep"),
)
"""Delete a page of a user's sessions (those given, or the first of all) but
one: how many ended, and whether any are left; the client sends the next
page until none is.

A session is deleted only if it is the user's (its header names the user),
so a member naming another user's session is left alone, and so is ``keep``.
"""

#: Every script, for the test that checks each against its head.
SCRIPTS = {
    "CREATE": CREATE,
    "UPDATE": UPDATE,
    "CHANGE": CHANGE,
    "RENAME": RENAME,
    "TOUCH": TOUCH,
    "DELETE": DELETE,
    "LEAVE": LEAVE,
    "LIST": LIST,
    "REVOKE": REVOKE,
}
