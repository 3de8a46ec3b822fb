"""What a person needs to recognise a session: where and with what it signed
in, and when it was last used.

With ``PROLOGUE_SESSIONS_ACTIVITY = True``, each logged-in session holds,
under one reserved key (``ACTIVITY_KEY``), the client's IP address and user
agent at login and when last seen, and both times::

    "_prologue_activity": {"login": [ip, user_agent, at], "last": [ip, user_agent, at]}

``at`` is a Unix time in whole seconds; ``ip`` is ``None`` when the request
had no valid address. Any engine stores it as part of the session, and the
memory and Redis engines read it back when they list a user's sessions
(``user_sessions.list_sessions()``).

The login point is written by a receiver of ``user_logged_in``; the last
point by ``ActivityMiddleware``, at most once per
``PROLOGUE_SESSIONS_ACTIVITY_INTERVAL`` seconds: a request within the
interval changes nothing, so a session that it does not otherwise change is
not saved.

The client's address is ``REMOTE_ADDR``, unless that is one of
``PROLOGUE_SESSIONS_TRUSTED_PROXIES``: then it is the right-most address of
``PROLOGUE_SESSIONS_PROXY_HEADER`` (``X-Forwarded-For`` by default) that is
not a trusted proxy. Only a valid IP address is stored, truncated with
``PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP`` (IPv4 to /24, IPv6 to /48).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from django_prologue_sessions.backends._session_keys import USER_ID_KEY
from django_prologue_sessions.backends.base import date_from_timestamp
from django_prologue_sessions.conf import app_settings

__all__ = [
    "ACTIVITY_KEY",
    "MAX_USER_AGENT",
    "ActivityMiddleware",
    "Point",
    "SessionActivity",
    "client_ip",
    "from_session",
    "record_login",
]

ACTIVITY_KEY = "_prologue_activity"
#: Characters of a user agent kept; real ones are shorter, a longer one is
#: cut rather than let a client grow every session it has.
MAX_USER_AGENT = 256

# The clock of the recorded times (tests move it).
_now = time.time

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Point:
    """Where a session was used from, and when (an aware datetime in UTC)."""

    ip: str | None
    user_agent: str
    at: datetime


@dataclass(frozen=True)
class SessionActivity:
    """What was recorded of a session: at login, and when last seen."""

    login: Point
    last: Point


def from_session(session: Mapping[str, Any] | None) -> SessionActivity | None:
    """The activity a session's data holds; ``None`` if none, or malformed."""
    stored = None if session is None else session.get(ACTIVITY_KEY)
    if not isinstance(stored, dict):
        return None
    login, last = _point(stored.get("login")), _point(stored.get("last"))
    if login is None or last is None:
        return None
    return SessionActivity(login, last)


def _point(value: Any) -> Point | None:
    if not isinstance(value, list) or len(value) != 3:
        return None
    ip, user_agent, at = value
    if ip is not None and _valid_ip(ip) is None:
        ip = None
    user_agent = _printable(user_agent) if isinstance(user_agent, str) else ""
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    try:
        moment = date_from_timestamp(at)
    except (OverflowError, OSError, ValueError):
        return None
    return Point(ip, user_agent, moment)


# Where the request comes from ------------------------------------------------


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address as this site can trust it; ``None`` if unknown.

    ``REMOTE_ADDR``, the peer of this server. Only when that peer is a
    trusted proxy is the proxy header read, right to left: each trusted
    proxy appended the address it was reached from, so the first address
    that is not a trusted proxy is the client. Whatever the client itself
    put into the header lies to the left of that and is never read. An
    address that does not parse gives ``None``: nothing is stored.
    """
    peer = _valid_ip(request.META.get("REMOTE_ADDR"))
    if peer is None:
        return None
    trusted = _networks(tuple(app_settings.PROLOGUE_SESSIONS_TRUSTED_PROXIES))
    if not _in(peer, trusted):
        return _stored(peer)
    header = request.META.get(app_settings.PROLOGUE_SESSIONS_PROXY_HEADER)
    if not isinstance(header, str) or not header.strip():
        return _stored(peer)
    client = peer
    for entry in reversed(header.split(",")):
        address = _valid_ip(_without_port(entry.strip()))
        if address is None:
            return None
        client = address
        if not _in(address, trusted):
            break
    return _stored(client)


def _valid_ip(value: Any) -> IPAddress | None:
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(value.partition("%")[0])
    return address


def _without_port(entry: str) -> str:
    """``1.2.3.4:5678`` and ``[2001:db8::1]:5678`` as the bare address."""
    if entry.startswith("["):
        return entry[1:].partition("]")[0]
    if entry.count(":") == 1:
        return entry.partition(":")[0]
    return entry


@functools.lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # check E053 reports it
    return tuple(networks)


def _in(address: IPAddress, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


def _stored(address: IPAddress) -> str:
    if app_settings.PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP:
        prefix = 24 if address.version == 4 else 48
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return str(network.network_address)
    return str(address)


def _user_agent(request: HttpRequest) -> str:
    value = request.META.get("HTTP_USER_AGENT", "")
    return _printable(value) if isinstance(value, str) else ""


def _printable(user_agent: str) -> str:
    """At most ``MAX_USER_AGENT`` characters, none of them a control
    character: the value is shown in pages and terminals."""
    return "".join(c for c in user_agent[:MAX_USER_AGENT] if c.isprintable())


def _here(request: HttpRequest, now: int) -> list[Any]:
    return [client_ip(request), _user_agent(request), now]


# Recording ---------------------------------------------------------------


def record_login(
    sender: Any, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """``user_logged_in`` receiver: the session starts its record afresh."""
    if request is None or not app_settings.PROLOGUE_SESSIONS_ACTIVITY:
        return
    session = getattr(request, "session", None)
    if session is None:
        return
    here = _here(request, int(_now()))
    session[ACTIVITY_KEY] = {"login": here, "last": here}


def _record_last(request: HttpRequest) -> None:
    """Refresh the last point of a logged-in session, if the interval passed."""
    session: SessionBase | None = getattr(request, "session", None)
    if session is None:
        return
    # No cookie and untouched: no session to load, nobody logged in.
    if session.session_key is None and not session.accessed:
        return
    if session.get(USER_ID_KEY) is None:
        return
    now = int(_now())
    stored = session.get(ACTIVITY_KEY)
    last_at = _last_at(stored)
    if last_at is None or not isinstance(stored, dict):
        # Logged in before recording was on (or a record that is not ours):
        # what is known starts now.
        here = _here(request, now)
        session[ACTIVITY_KEY] = {"login": here, "last": here}
        return
    if 0 <= now - last_at < app_settings.PROLOGUE_SESSIONS_ACTIVITY_INTERVAL:
        return
    session[ACTIVITY_KEY] = {"login": stored["login"], "last": _here(request, now)}


def _last_at(stored: Any) -> float | None:
    """When the record was last refreshed; None if it is no record.

    Every request of a logged-in session asks, so only what this needs is
    checked; ``from_session()`` cleans the rest when a page shows it.
    """
    if not isinstance(stored, dict) or "login" not in stored:
        return None
    last = stored.get("last")
    if not isinstance(last, list) or len(last) != 3:
        return None
    at = last[2]
    if isinstance(at, bool) or not isinstance(at, int | float):
        return None
    return at


class ActivityMiddleware:
    """Keeps the "last seen" of each logged-in session, once per interval.

    Place it after ``SessionMiddleware`` (and ``AuthenticationMiddleware``).
    It works after the view, so a login in this request is seen. Sync and
    async: under ASGI the session is read through ``aload()`` when the view
    did not load it.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        if app_settings.PROLOGUE_SESSIONS_ACTIVITY:
            _record_last(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)  # type: ignore[misc]
        if app_settings.PROLOGUE_SESSIONS_ACTIVITY:
            session = getattr(request, "session", None)
            if session is not None and session.session_key is not None:
                # Loaded through aload(), not by a sync read on the loop.
                await session.aget(USER_ID_KEY)
            _record_last(request)
        assert isinstance(response, HttpResponseBase)
        return response
