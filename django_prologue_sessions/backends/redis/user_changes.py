"""Changing a user's stored sessions from outside their requests.

``flash_user()`` uses it: for each session of the user, read it, apply a
change to its data, and write it back, as its next version, only if it is
still stored as read, keeping its TTL, header and index entry: a native
``SET ... IFEQ ... KEEPTTL`` where the server has it, as the engine's saves
are, else the ``CHANGE`` script. A session saved meanwhile comes back from
the write as it is now: the change is applied to that and sent again. A
session that ended stays ended. A request that loaded the session before
the change and saves it after meets a new version, and merges as with any
concurrent save.

The work is bounded per command: the user's index is read a page at a time
(``ZSCAN``), a page's sessions in one ``MGET`` (they share the index's hash
tag, so one cluster slot), then one write per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_prologue_sessions.backends.base import (
    SAVE_ATTEMPTS,
    session_settings,
    still_changing,
)
from django_prologue_sessions.backends.redis import layout, scripts
from django_prologue_sessions.backends.redis.connection import (
    NO_IFEQ,
    AsyncRedis,
    SyncRedis,
    current_options,
)
from django_prologue_sessions.backends.redis.layout import SessionCodec, user_tags

if TYPE_CHECKING:
    from django_prologue_sessions.user_sessions import SessionChange

#: Index members asked for per ``ZSCAN`` (a hint to Redis), and so sessions
#: read per ``MGET`` and changed before the next page is asked for.
PAGE = 100


@dataclass(frozen=True)
class Change:
    """The conditional write of one changed session: ``value``, to replace
    ``expected`` (the value read) as its next version."""

    key: str
    expected: bytes
    version: str
    unversioned: bytes

    @property
    def value(self) -> bytes:
        return b"%d%s" % (int(self.version) + 1, self.unversioned)

    def send(self, handle: SyncRedis) -> Any:
        # As the engine saves: a native SET ... IFEQ where the server has it
        # (keeping the TTL), else the CHANGE script.
        if handle.call.has_ifeq is not False:
            found = handle.set_if_equal(self.key, self.value, self.expected, None)
            if found is not NO_IFEQ:
                return self._outcome(found)
        return handle.run_script(scripts.CHANGE, [self.key], self._args())

    async def asend(self, handle: AsyncRedis) -> Any:
        if handle.call.has_ifeq is not False:
            found = await handle.set_if_equal(self.key, self.value, self.expected, None)
            if found is not NO_IFEQ:
                return self._outcome(found)
        return await handle.run_script(scripts.CHANGE, [self.key], self._args())

    def _args(self) -> list[Any]:
        return scripts.CHANGE.argv(expected=self.version, unversioned=self.unversioned)

    def _outcome(self, found: bytes | None) -> Any:
        """The native answer as the script's: 0 if gone (IFEQ never creates
        the key), 1 if written, or the value stored meanwhile."""
        if found is None:
            return 0
        return 1 if found == self.expected else found


class UserSessionsChange:
    """The decisions of changing a user's sessions, made once for the sync
    and async loops (``change_user_sessions()`` and its twin)."""

    def __init__(self, user_id: str, change: SessionChange, codec: SessionCodec):
        self.user_id = user_id
        self.change = change
        self.codec = codec
        self.changed = 0
        # ZSCAN may name a member twice (the index grew or shrank meanwhile):
        # each session is changed once.
        self.seen: set[bytes] = set()

    def indexes(self) -> Iterator[tuple[str, str]]:
        """The tag and key of each index of the user's sessions."""
        prefix = current_options().key_prefix
        for tag in user_tags(self.user_id):
            yield tag, layout.index_key(prefix, tag, self.user_id)

    def page(self, tag: str, reply: list[Any]) -> tuple[int, list[str]]:
        """The next cursor and the keys of the sessions new in a ZSCAN page
        of the index with ``tag``."""
        cursor, found = reply
        # redis-py pairs each member with its score; without its reply
        # callback (as in a pipeline) they alternate.
        paired = bool(found) and isinstance(found[0], tuple | list)
        members = [pair[0] for pair in found] if paired else found[::2]
        prefix = current_options().key_prefix
        keys = []
        for member in members:
            if member not in self.seen:
                self.seen.add(member)
                # A member is a session's id after the index's tag.
                keys.append(layout.id_key(prefix, tag + member.decode()))
        return int(cursor), keys

    def plan(self, key: str, value: bytes | None) -> Change | None:
        """The write of the change to the session ``value``; None for none
        (it ended, is not the user's, does not decode, or stays as it is)."""
        if value is None:
            return None
        max_bytes = session_settings().max_bytes
        try:
            header, form, body = layout.parse(value)
            data = self.codec.loads(self.codec.unpack(form, body, max_bytes))
        except Exception:
            return None  # left as it is, for its next save to replace
        if header.user != self.user_id or header.created is None:
            return None  # now another user's, or no user's
        if not self.change(data):
            return None
        # The header as it is, byte for byte: its dates and how long the
        # index entry lasts stay, with the TTL.
        head = value[len(header.version) : len(value) - len(body) - 1]
        serialized = self.codec.dumps(data)
        if len(serialized) > max_bytes:
            return None  # the change would make it too large to load
        rest = head + self.codec.pack(serialized)
        return Change(key, value, header.version, rest)

    def written(self, change: Change, reply: Any) -> Change | None:
        """Take in the script's reply: None when done, or the next change."""
        if isinstance(reply, bytes):
            # Saved meanwhile, by a request or another change. (A send tried
            # again after its reply was lost may meet its own write here, and
            # add the message twice: telling it apart from an identical
            # concurrent flash would need a mark in every value.)
            return self.plan(change.key, reply)
        if reply:
            self.changed += 1
        return None


def change_user_sessions(
    handle: SyncRedis, user_id: str, change: SessionChange, codec: SessionCodec
) -> int:
    work = UserSessionsChange(user_id, change, codec)
    for tag, index in work.indexes():
        cursor = 0
        while True:
            scanned = handle.execute("ZSCAN", index, cursor, "COUNT", PAGE)
            cursor, keys = work.page(tag, scanned)
            values = handle.execute("MGET", *keys) if keys else []
            for key, value in zip(keys, values, strict=True):
                write = work.plan(key, value)
                for _attempt in range(SAVE_ATTEMPTS):
                    if write is None:
                        break
                    write = work.written(write, write.send(handle))
                if write is not None:
                    raise still_changing()
            if cursor == 0:
                break
    return work.changed


async def achange_user_sessions(
    handle: AsyncRedis, user_id: str, change: SessionChange, codec: SessionCodec
) -> int:
    work = UserSessionsChange(user_id, change, codec)
    for tag, index in work.indexes():
        cursor = 0
        while True:
            scanned = await handle.execute("ZSCAN", index, cursor, "COUNT", PAGE)
            cursor, keys = work.page(tag, scanned)
            values = await handle.execute("MGET", *keys) if keys else []
            for key, value in zip(keys, values, strict=True):
                write = work.plan(key, value)
                for _attempt in range(SAVE_ATTEMPTS):
                    if write is None:
                        break
                    write = work.written(write, await write.asend(handle))
                if write is not None:
                    raise still_changing()
            if cursor == 0:
                break
    return work.changed
