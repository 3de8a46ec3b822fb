"""The Redis engine's claims on sessions moved in from the previous engine
(``django_prologue_sessions.migrate``): one string per moved session,
``{prefix}:moved:<HMAC of the old key>``, created only if absent by one
script (which returns the value already there, if any) and expiring after
``MOVE_WINDOW`` seconds. It holds a nonce and a key tag, never a session
key."""

from __future__ import annotations

from django_prologue_sessions.backends.redis.connection import (
    RedisUnavailable,
    async_redis,
    current_options,
    sync_redis,
)
from django_prologue_sessions.backends.redis.scripts import LuaScript
from django_prologue_sessions.migrate import MOVE_WINDOW

# SET NX GET in one step; redis-py's reply callback for SET would turn the
# value GET returns into False.
CLAIM = LuaScript(
    """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
""",
    head=("value", "ttl"),
)


def _name(marker: str) -> str:
    return f"{current_options().key_prefix}moved:{marker}"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RedisClaims:
    # A retried claim that had gone through returns this request's own
    # value, which names the same key: the claim is idempotent.

    def claim(self, marker: str, value: str) -> str | None:
        args = CLAIM.argv(value=value, ttl=MOVE_WINDOW)
        try:
            return _text(sync_redis().run_script(CLAIM, [_name(marker)], args))
        except RedisUnavailable as exc:
            raise _unavailable(exc, write=True) from exc.error

    def recall(self, marker: str) -> str | None:
        try:
            return _text(sync_redis().execute("GET", _name(marker)))
        except RedisUnavailable as exc:
            raise _unavailable(exc) from exc.error

    async def aclaim(self, marker: str, value: str) -> str | None:
        args = CLAIM.argv(value=value, ttl=MOVE_WINDOW)
        try:
            return _text(await async_redis().run_script(CLAIM, [_name(marker)], args))
        except RedisUnavailable as exc:
            raise _unavailable(exc, write=True) from exc.error

    async def arecall(self, marker: str) -> str | None:
        try:
            return _text(await async_redis().execute("GET", _name(marker)))
        except RedisUnavailable as exc:
            raise _unavailable(exc) from exc.error


def _unavailable(exc: RedisUnavailable, write: bool = False) -> Exception:
    from django_prologue_sessions.backends.redis.store import unavailable

    return unavailable(exc, write)
