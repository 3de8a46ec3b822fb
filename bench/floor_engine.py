"""The floor through ``SessionMiddleware``: a session engine that does nothing
but the raw round trips our Redis engine makes.

Its ``load()`` is one ``GET`` on a plain socket, its ``save()`` one ``SET``
of the benchmark's session JSON, made once (``bench/urls.py``); it parses and
serializes nothing and its keys come from one ``os.urandom()`` call. What it
costs on top of the bare floor is Django's own session handling
(``SessionMiddleware``: the store, the cookie, ``Vary: Cookie``): no Redis
session engine can be faster, so half of a peer's time below this floor is a
speedup no engine can reach.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from bench.urls import AGE, PAYLOAD, SESSION, raw_connection


class SessionStore(SessionBase):
    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        reply = raw_connection().call(b"GET", self.session_key.encode())
        if reply.startswith(b"$-1"):
            self._session_key = None
            return {}
        return dict(SESSION)

    def exists(self, session_key: str | None) -> bool:
        return False

    def create(self) -> None:
        self._session_key = os.urandom(16).hex()
        self.save(must_create=True)
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        key = self.session_key.encode()
        raw_connection().call(b"SET", key, PAYLOAD, b"EX", b"%d" % AGE)
        return None

    def delete(self, session_key: str | None = None) -> None:
        pass

    @classmethod
    def clear_expired(cls) -> None:
        pass
