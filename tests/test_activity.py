"""Recording where and when a session is used (``activity``): the client's
address behind proxies, what is stored, and how seldom it is written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.test import AsyncClient, Client, RequestFactory, override_settings

from django_prologue_sessions import activity
from django_prologue_sessions.activity import (
    ACTIVITY_KEY,
    MAX_USER_AGENT,
    Point,
    client_ip,
    from_session,
)
from django_prologue_sessions.backends import memory
from django_prologue_sessions.backends.base import date_from_timestamp
from django_prologue_sessions.user_sessions import list_sessions
from tests.redis_round_trips import fewest_round_trips

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
START = 1_790_000_000

MIDDLEWARE = [
    "django_prologue_sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_prologue_sessions.activity.ActivityMiddleware",
]


def request_from(remote_addr: str | None, **meta: Any) -> HttpRequest:
    request = RequestFactory().get("/")
    if remote_addr is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote_addr
    request.META.update(meta)
    return request


# The client's address.


def test_the_peer_is_the_client_without_trusted_proxies() -> None:
    spoofed = request_from("198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_ip(spoofed) == "198.51.100.7"


@override_settings(PROLOGUE_SESSIONS_TRUSTED_PROXIES=["10.0.0.0/8"])
@pytest.mark.parametrize(
    ("remote_addr", "forwarded", "client"),
    [
        # The proxy appended the address it was reached from.
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        # What the client wrote itself is to the left: never read.
        ("10.0.0.2", "1.1.1.1, 203.0.113.9", "203.0.113.9"),
        # Two trusted proxies in a row: the first untrusted from the right.
        ("10.0.0.2", "6.6.6.6, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
        # Every hop trusted: the left-most is the client.
        ("10.0.0.2", "10.9.9.9, 10.1.2.3", "10.9.9.9"),
        # A proxy that writes ports.
        ("10.0.0.2", "203.0.113.9:51234", "203.0.113.9"),
        ("10.0.0.2", "[2001:db8::5]:443", "2001:db8::5"),
        # Garbage where a trusted proxy's entry should be: nothing stored.
        ("10.0.0.2", "not-an-ip", None),
        ("10.0.0.2", "203.0.113.9, <script>", None),
        # No header: the proxy itself.
        ("10.0.0.2", "", "10.0.0.2"),
        # A peer that is no trusted proxy: its header is ignored.
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),
        # IPv4 written as IPv6.
        ("::ffff:192.0.2.1", "", "192.0.2.1"),
    ],
)
def test_trusted_proxies(remote_addr: str, forwarded: str, client: str | None) -> None:
    assert client_ip(request_from(remote_addr, HTTP_X_FORWARDED_FOR=forwarded)) == (
        client
    )


@override_settings(
    PROLOGUE_SESSIONS_TRUSTED_PROXIES=["10.0.0.2"],
    PROLOGUE_SESSIONS_PROXY_HEADER="HTTP_X_REAL_IP",
)
def test_the_proxy_header_is_the_one_configured() -> None:
    request = request_from(
        "10.0.0.2", HTTP_X_REAL_IP="203.0.113.9", HTTP_X_FORWARDED_FOR="6.6.6.6"
    )
    assert client_ip(request) == "203.0.113.9"


@pytest.mark.parametrize("remote_addr", [None, "", "unknown", "1.2.3.4.5", "x" * 500])
def test_no_valid_peer_address_is_none(remote_addr: str | None) -> None:
    assert client_ip(request_from(remote_addr)) is None


@override_settings(PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP=True)
def test_truncated_addresses() -> None:
    assert client_ip(request_from("198.51.100.7")) == "198.51.100.0"
    assert client_ip(request_from("2001:db8:1234:5678::1")) == "2001:db8:1234::"


def test_a_scoped_ipv6_address_is_stored_without_its_zone() -> None:
    assert client_ip(request_from("fe80::1%eth0")) == "fe80::1"


# What is read back.


def test_from_session_reads_both_points() -> None:
    session = {
        ACTIVITY_KEY: {
            "login": ["192.0.2.1", "UA one", START],
            "last": [None, "UA two", START + 60],
        }
    }
    recorded = from_session(session)
    assert recorded is not None
    assert recorded.login == Point("192.0.2.1", "UA one", date_from_timestamp(START))
    assert recorded.last == Point(None, "UA two", date_from_timestamp(START + 60))


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "text",
        [],
        {"login": ["192.0.2.1", "UA", START]},
        {"login": ["192.0.2.1", "UA", START], "last": ["192.0.2.1", "UA"]},
        {"login": ["192.0.2.1", "UA", "soon"], "last": ["192.0.2.1", "UA", START]},
        {"login": ["192.0.2.1", "UA", True], "last": ["192.0.2.1", "UA", START]},
        {"login": ["192.0.2.1", "UA", 10**20], "last": ["192.0.2.1", "UA", START]},
    ],
)
def test_malformed_activity_reads_as_none(stored: Any) -> None:
    assert from_session({ACTIVITY_KEY: stored}) is None


def test_what_is_read_back_is_cleaned() -> None:
    recorded = from_session(
        {
            ACTIVITY_KEY: {
                "login": ["not an ip", "\x1b[31mred\x1b[0m" + "a" * 1000, START],
                "last": ["192.0.2.1", 42, START],
            }
        }
    )
    assert recorded is not None
    assert recorded.login.ip is None
    # Cut to MAX_USER_AGENT characters, then the two escapes taken out.
    assert recorded.login.user_agent == "[31mred[0m" + "a" * (MAX_USER_AGENT - 12)
    assert recorded.last.user_agent == ""


# Through the middleware, on the engines that list a user's sessions.


class Clock:
    def __init__(self) -> None:
        self.now = float(START)

    def __call__(self) -> float:
        return self.now


ENGINES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@contextmanager
def recording_on(request: pytest.FixtureRequest, **more: Any) -> Iterator[str]:
    """The engine ``request.param`` names, emptied, behind ``MIDDLEWARE``
    with recording on (and the settings in ``more``)."""
    name: str = request.param
    if name == "redis":
        request.getfixturevalue("redis_client")  # flushed
        more["SESSION_REDIS"] = {"url": request.getfixturevalue("redis_url")}
    memory.SessionStore.clear_all()
    with override_settings(
        SESSION_ENGINE=f"django_prologue_sessions.backends.{name}",
        MIDDLEWARE=MIDDLEWARE,
        PROLOGUE_SESSIONS_ACTIVITY=True,
        **more,
    ):
        yield name
    memory.SessionStore.clear_all()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    with recording_on(request, PROLOGUE_SESSIONS_ACTIVITY_INTERVAL=300) as name:
        yield name


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock()
    with mock.patch.object(activity, "_now", clock):
        yield clock


@pytest.fixture
def ada(db: None) -> AbstractBaseUser:
    user: AbstractBaseUser = get_user_model().objects.create_user(username="ada")
    return user


def log_in(username: str, remote_addr: str, user_agent: str) -> Client:
    client = Client(REMOTE_ADDR=remote_addr, HTTP_USER_AGENT=user_agent)
    assert client.post("/account/login/", {"username": username}).status_code == 200
    return client


def recorded_points(user: AbstractBaseUser) -> tuple[Point, Point]:
    [session] = list_sessions(user)
    assert session.activity is not None
    return session.activity.login, session.activity.last


def test_a_login_records_where_and_when(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    log_in("ada", "192.0.2.1", FIREFOX)
    at = date_from_timestamp(START)
    assert recorded_points(ada) == (
        Point("192.0.2.1", FIREFOX, at),
        Point("192.0.2.1", FIREFOX, at),
    )


def test_last_seen_moves_once_the_interval_has_passed(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    client = log_in("ada", "192.0.2.1", FIREFOX)
    clock.now += 299
    client.get("/session/read/", REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Phone")
    login, last = recorded_points(ada)
    assert last == login  # within the interval: nothing written
    clock.now += 1
    client.get("/session/read/", REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Phone")
    login, last = recorded_points(ada)
    assert login == Point("192.0.2.1", FIREFOX, date_from_timestamp(START))
    assert last == Point("198.51.100.7", "Phone", date_from_timestamp(START + 300))


def test_a_read_within_the_interval_does_not_save(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    client = log_in("ada", "192.0.2.1", FIREFOX)
    with mock.patch.object(
        type(client.session), "save", autospec=True
    ) as save:  # the engine's SessionStore
        client.get("/session/read/")
        assert save.call_count == 0
        clock.now += 300
        client.get("/session/read/")
        assert save.call_count == 1


@pytest.mark.redis
def test_redis_round_trips_within_and_after_the_interval(
    redis_url: str, redis_client: Any, clock: Clock, db: None
) -> None:
    get_user_model().objects.create_user(username="ada")
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
        MIDDLEWARE=MIDDLEWARE,
        PROLOGUE_SESSIONS_ACTIVITY=True,
    ):
        client = log_in("ada", "192.0.2.1", FIREFOX)
        client.get("/session/read/")  # connections open
        # One GET to load the session, nothing written.
        assert fewest_round_trips(lambda: client.get("/session/read/")) == 1

        def after_the_interval() -> None:
            clock.now += 300
            client.get("/session/read/")

        # The load, then the save's script.
        assert fewest_round_trips(after_the_interval) == 2


def test_anonymous_sessions_record_nothing(engine: str, clock: Clock) -> None:
    client = Client(REMOTE_ADDR="192.0.2.1")
    client.get("/session/set/", {"cart": "book"})
    clock.now += 3600
    client.get("/session/set/", {"cart": "pen"})
    assert ACTIVITY_KEY not in client.get("/session/get/").json()


def test_a_request_without_a_session_cookie_loads_nothing(
    engine: str, clock: Clock
) -> None:
    client = Client()
    with mock.patch.object(activity, "from_session") as read:
        client.get("/session/untouched/")
    read.assert_not_called()
    assert not client.cookies


def test_a_session_from_before_recording_starts_its_record_at_its_next_request(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    with override_settings(PROLOGUE_SESSIONS_ACTIVITY=False):
        client = log_in("ada", "192.0.2.1", FIREFOX)
        [session] = list_sessions(ada)
        assert session.activity is None
    clock.now += 5
    client.get("/session/read/")
    login, last = recorded_points(ada)
    assert login == last == Point("192.0.2.1", FIREFOX, date_from_timestamp(START + 5))


@pytest.mark.parametrize(
    "stored", ["garbage", {"last": [None, "", START]}, {"login": [], "last": 5}]
)
def test_a_record_that_is_not_ours_is_started_afresh(
    engine: str, clock: Clock, ada: AbstractBaseUser, stored: Any
) -> None:
    client = log_in("ada", "192.0.2.1", FIREFOX)
    session = client.session
    session[ACTIVITY_KEY] = stored
    session.save()
    clock.now += 1
    assert client.get("/session/read/").status_code == 200
    login, last = recorded_points(ada)
    assert login == last == Point("192.0.2.1", FIREFOX, date_from_timestamp(START + 1))


def test_recording_off_records_nothing(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    with override_settings(PROLOGUE_SESSIONS_ACTIVITY=False):
        client = log_in("ada", "192.0.2.1", FIREFOX)
        clock.now += 3600
        client.get("/session/read/")
        [session] = list_sessions(ada)
    assert session.activity is None


def test_a_garbage_user_agent_is_cut_and_cleaned(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    log_in("ada", "192.0.2.1", "\x00\x07evil\r\n" + "x" * 10_000)
    login, _ = recorded_points(ada)
    # The first MAX_USER_AGENT characters, less the four control characters.
    assert login.user_agent == "evil" + "x" * (MAX_USER_AGENT - 8)


def test_the_middleware_under_asgi(
    engine: str, clock: Clock, ada: AbstractBaseUser
) -> None:
    signed_in = log_in("ada", "192.0.2.1", FIREFOX)
    # AsyncClient's scope has the client at 127.0.0.1, its REMOTE_ADDR.
    client = AsyncClient()
    client.cookies = signed_in.cookies
    clock.now += 600
    response = async_to_sync(client.get)(
        "/session/read/", headers={"user-agent": "Async"}
    )
    assert response.status_code == 200
    _, last = recorded_points(ada)
    assert last == Point("127.0.0.1", "Async", date_from_timestamp(START + 600))
