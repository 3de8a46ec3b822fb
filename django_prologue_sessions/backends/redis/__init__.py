"""The Redis session engine, ``django_prologue_sessions.backends.redis``.

``store`` holds the ``SessionStore``; ``layout``, how a session lies in Redis;
``scripts``, the Lua scripts that write it; ``connection``, the redis-py
clients; ``options``, ``SESSION_REDIS``.

``SessionStore`` is imported when first asked for, so that ``options`` (and
the system checks that use it) work where redis-py is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_prologue_sessions.backends.redis.store import SessionStore

__all__ = ["SessionStore"]


def __getattr__(name: str) -> Any:
    if name == "SessionStore":
        from django_prologue_sessions.backends.redis.store import SessionStore

        return SessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
