"""The views of the four scenarios, and the floor's twins of them.

A session of typical size: the three keys ``django.contrib.auth.login()``
writes, a CSRF secret as ``CSRF_USE_SESSIONS`` keeps it, and a small cart.
"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

SESSION: dict[str, Any] = {
    "_auth_user_id": "4217",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    # An HMAC-SHA256 hex digest, as get_session_auth_hash() returns.
    "_auth_user_hash": (
        "9f2c4e1b7a0d3c5e8f6a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6"
    ),
    "_csrftoken": "kY3vQ9pL2mX7rT4wZ8nB5cF1gH6jD0sA",
    "cart": [
        {"sku": "BK-1024", "qty": 1, "price": "24.90"},
        {"sku": "MG-0042", "qty": 2, "price": "9.50"},
        {"sku": "TS-3310", "qty": 1, "price": "19.00"},
    ],
}


def create(request: HttpRequest) -> HttpResponse:
    request.session.update(SESSION)
    return HttpResponse(b"created")


def read(request: HttpRequest) -> HttpResponse:
    user = request.session.get("_auth_user_id")
    cart = request.session.get("cart", [])
    return HttpResponse(f"{user}: {len(cart)} items".encode())


def modify(request: HttpRequest) -> HttpResponse:
    cart = request.session.get("cart", [])
    # One quantity changes, within a digit, so that the session keeps its size.
    first = dict(cart[0], qty=cart[0]["qty"] % 9 + 1)
    request.session["cart"] = [first, *cart[1:]]
    return HttpResponse(b"modified")


def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"untouched")


# The floor: no session and no client library, only the Redis round trips
# that our Redis engine makes for the scenario, each a command sent on a plain
# socket and its reply read back, and the cookie a session engine would set.

PAYLOAD = json.dumps(SESSION, separators=(",", ":")).encode()
#: Round trips per scenario: the Redis engine's targets until the orchestrator
#: sends the numbers it measured of our Redis engine.
FLOOR_TRIPS: dict[str, int] = {"create": 1, "read": 1, "modify": 2}
AGE = 14 * 24 * 60 * 60
_keys = itertools.count()


def bench_setting(name: str) -> Any:
    """A setting of ``bench/worker_settings.py`` (unknown to django-stubs)."""
    return getattr(settings, name)


def pack(*args: bytes) -> bytes:
    """A command in RESP, the protocol Redis speaks."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _complete(reply: bytes) -> bool:
    """Whether ``reply`` holds a whole simple or bulk-string reply."""
    end = reply.find(b"\r\n")
    if end < 0:
        return False
    if reply[:1] != b"$":
        return True
    length = int(reply[1:end])
    return length < 0 or len(reply) >= end + 2 + length + 2


class RawConnection:
    """A socket to the Redis server: what no Redis client can do with less."""

    def __init__(self, url: str) -> None:
        parsed = urlsplit(url)
        self.sock = socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parsed.password:
            self.call(b"AUTH", unquote(parsed.password).encode())
        database = parsed.path.strip("/") or "0"
        if database != "0":
            self.call(b"SELECT", database.encode())

    def call(self, *args: bytes) -> bytes:
        self.sock.sendall(pack(*args))
        reply = self.sock.recv(65536)
        while not _complete(reply):
            reply += self.sock.recv(65536)
        if reply[:1] == b"-":
            raise RuntimeError(reply.decode(errors="replace"))
        return reply


@cache
def raw_connection() -> RawConnection:
    return RawConnection(bench_setting("BENCH_REDIS_URL"))


def floor(scenario: str, body: bytes) -> Callable[[HttpRequest], HttpResponse]:
    """The floor's view of ``scenario``, answering as the session's view does."""

    def view(request: HttpRequest) -> HttpResponse:
        trips = FLOOR_TRIPS.get(scenario, 0)
        connection = raw_connection()
        key = b"bench:floor:%s" % (
            b"%d" % next(_keys) if scenario == "create" else b"fixture"
        )
        for trip in range(trips):
            if scenario in ("read", "modify") and trip == 0:
                connection.call(b"GET", key)
            else:
                connection.call(b"SET", key, PAYLOAD, b"EX", b"%d" % AGE)
        response = HttpResponse(body)
        if scenario in ("create", "modify"):
            response.set_cookie(settings.SESSION_COOKIE_NAME, key.decode(), max_age=AGE)
        return response

    return view


BODIES = {
    "create": b"created",
    "read": b"4217: 3 items",
    "modify": b"modified",
    "untouched": b"untouched",
}
urlpatterns = [
    path("create/", create),
    path("read/", read),
    path("modify/", modify),
    path("untouched/", untouched),
    *(path(f"floor/{name}/", floor(name, body)) for name, body in BODIES.items()),
]
