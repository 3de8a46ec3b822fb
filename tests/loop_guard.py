"""Our Redis engine, refusing to do sync I/O on an event loop's thread.

``SESSION_ENGINE = "tests.loop_guard"`` in tests that prove that no session
I/O runs on the event loop: the engine's sync I/O methods carry Django's
``async_unsafe`` (what guards the ORM), so that called from a thread running
an event loop they raise ``SynchronousOnlyOperation`` instead of blocking it.
From any other thread (``sync_to_async``, WSGI) they run as usual. The async
methods, and everything else, are the engine's own.
"""

from __future__ import annotations

from django.utils.asyncio import async_unsafe

from django_prologue_sessions.backends import redis

Engine = redis.SessionStore


class SessionStore(Engine):
    load = async_unsafe(Engine.load)
    exists = async_unsafe(Engine.exists)
    create = async_unsafe(Engine.create)
    save = async_unsafe(Engine.save)
    delete = async_unsafe(Engine.delete)
    cycle_key = async_unsafe(Engine.cycle_key)
