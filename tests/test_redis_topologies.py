"""The Redis engine through Sentinel and on a Redis Cluster, for real.

The harness builds both from the same server binary, on loopback: a primary
with a replica and one sentinel, and a three-primary cluster. The whole
session contract runs against each; then a failover in the middle of a run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client, override_settings

from django_prologue_sessions.backends._session_keys import USER_ID_KEY, session_id
from django_prologue_sessions.backends.redis import SessionStore, layout
from django_prologue_sessions.backends.redis import connection as _redis_connection
from django_prologue_sessions.conf import DEFAULT_MAX_BYTES
from django_prologue_sessions.exceptions import SessionStoreUnavailable
from django_prologue_sessions.flash import aflash_user, flash_user
from tests import test_redis
from tests.redis_round_trips import (
    afewest_round_trips,
    count_round_trips,
    fewest_round_trips,
)
from tests.redis_server import ClusterSetup, SentinelSetup
from tests.test_expiry import closing

# The contract class asks for this fixture of its module's.
from tests.test_redis import _redis_url_on_class  # noqa: F401

pytestmark = pytest.mark.redis

ENGINE = "django_prologue_sessions.backends.redis"
SESSION_MESSAGES = "django.contrib.messages.storage.session.SessionStorage"


@pytest.fixture(scope="module")
def sentinel_setup() -> Iterator[SentinelSetup]:
    with SentinelSetup() as setup:
        yield setup


@pytest.fixture(scope="module")
def cluster_setup() -> Iterator[ClusterSetup]:
    with ClusterSetup(primaries=3) as setup:
        yield setup


@pytest.fixture(scope="class")
def _sentinel_on_class(
    request: pytest.FixtureRequest, sentinel_setup: SentinelSetup
) -> None:
    request.cls.setup_under_test = sentinel_setup


@pytest.fixture(scope="class")
def _cluster_on_class(
    request: pytest.FixtureRequest, cluster_setup: ClusterSetup
) -> None:
    request.cls.setup_under_test = cluster_setup


def stored_at(session: SessionStore) -> str:
    """The Redis key of ``session`` (under the current SESSION_REDIS)."""
    assert session.session_key is not None
    return SessionStore.redis_key(session.session_key)


def session_in(client: redis.Redis, key: str) -> dict[str, Any]:
    """The session stored at ``key``, read from ``client``'s server alone."""
    value = client.get(key)
    assert isinstance(value, bytes)
    _header, form, body = layout.parse(value)
    data: dict[str, Any] = json.loads(
        layout.SessionCodec.unpack(form, body, DEFAULT_MAX_BYTES)
    )
    return data


def sentinel_settings(setup: SentinelSetup, **more: Any) -> dict[str, Any]:
    return {
        "sentinel_list": setup.sentinel_list,
        "sentinel_master_alias": setup.master_name,
        **more,
    }


# The contract, in each topology ----------------------------------------------


@pytest.mark.usefixtures("_sentinel_on_class")
class SentinelContractTests(test_redis.RedisContractTests):
    setup_under_test: ClassVar[SentinelSetup]
    more: ClassVar[dict[str, Any]] = {}

    def get_engine_settings(self) -> dict[str, Any]:
        return {"SESSION_REDIS": sentinel_settings(self.setup_under_test, **self.more)}


class SentinelWaitContractTests(SentinelContractTests):
    """Every write waits for the replica: still the same contract."""

    more: ClassVar[dict[str, Any]] = {"wait_replicas": 1, "wait_timeout_ms": 500}


@pytest.mark.usefixtures("_cluster_on_class")
class ClusterContractTests(test_redis.RedisContractTests):
    setup_under_test: ClassVar[ClusterSetup]

    def get_engine_settings(self) -> dict[str, Any]:
        return {
            "SESSION_REDIS": {
                "cluster": True,
                "startup_nodes": self.setup_under_test.startup_nodes,
            }
        }


class ClusterUrlContractTests(ClusterContractTests):
    def get_engine_settings(self) -> dict[str, Any]:
        return {
            "SESSION_REDIS": {
                "cluster": True,
                "url": f"redis://127.0.0.1:{self.setup_under_test.nodes[1].port}",
                "prefix": "app:s",
            }
        }


# Sentinel ----------------------------------------------------------------------


def test_sentinel_writes_reach_the_replica_in_the_same_round_trip(
    sentinel_setup: SentinelSetup,
) -> None:
    settings = sentinel_settings(sentinel_setup, wait_replicas=1, wait_timeout_ms=500)
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=settings):
        warm = SessionStore()
        warm.save()  # connects, loads the scripts
        warm["k"] = "v"
        warm.save()
        sessions: list[SessionStore] = []

        def create_and_update() -> None:
            session = SessionStore()
            session["cart"] = ["book"]
            session.save()  # the create script and its WAIT
            session["cart"] = ["book", "pen"]
            session.save()
            sessions.append(session)

        assert fewest_round_trips(create_and_update) == 2
        session = sessions[-1]
        asyncio.run(async_write_and_wait(session.session_key))
        key = stored_at(session)
    # WAIT returned 1: the replica has it already, no need to wait for it.
    replica = sentinel_setup.replica.client()
    assert session_in(replica, key)["cart"] == ["book", "pen"]
    assert session_in(replica, key)["async"] == "yes"


def test_sentinel_deletes_wait_for_the_replica_too(
    sentinel_setup: SentinelSetup,
) -> None:
    """A flushed session must not come back with a failover: its UNLINK
    waits for the replica as a write does, in the same round trip."""
    settings = sentinel_settings(sentinel_setup, wait_replicas=1, wait_timeout_ms=500)
    replica = sentinel_setup.replica.client()
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=settings):
        keys: list[str] = []

        def flush() -> None:
            session = SessionStore()
            session["k"] = "v"
            session.save()
            keys.append(stored_at(session))
            assert replica.exists(keys[-1])
            with count_round_trips() as sent:
                session.flush()
            counts.append(sent.count)

        counts: list[int] = []
        for _ in range(3):
            flush()
        assert min(counts) == 1
        assert not any(replica.exists(key) for key in keys)
        other = SessionStore()
        other["k"] = "v"
        other.save()
        key = stored_at(other)
        asyncio.run(async_flush(other.session_key))
        assert not replica.exists(key)


async def async_flush(session_key: str | None) -> None:
    session = SessionStore(session_key)
    assert await session.aexists(session_key)  # connects this loop's client
    sessions = [session]
    for _ in range(2):
        another = SessionStore()
        await another.aset("k", "v")
        await another.asave()
        sessions.append(another)

    async def flush() -> None:
        await sessions.pop().aflush()

    assert await afewest_round_trips(flush) == 1


async def async_write_and_wait(session_key: str | None) -> None:
    session = SessionStore(session_key)
    await session.aset("async", "yes")
    await session.asave()
    changes = iter(range(3))

    async def update() -> None:
        await session.aset("again", next(changes))
        await session.asave()

    assert await afewest_round_trips(update) == 1


def test_a_flushed_script_cache_with_wait_reads_both_replies(
    sentinel_setup: SentinelSetup,
) -> None:
    """NOSCRIPT answers the script, WAIT still answers after it: both are
    read before the script is sent again in full, so no reply is left over
    for the next command."""
    settings = sentinel_settings(sentinel_setup, wait_replicas=1, wait_timeout_ms=500)
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=settings):
        session = SessionStore()
        session.update({"a": "1", USER_ID_KEY: "7"})
        session.save()
        sentinel_setup.primary.client().script_flush()

        def rekey_after_a_flush() -> None:  # re-keying runs a script
            sentinel_setup.primary.client().script_flush()
            with count_round_trips() as sent:
                session.cycle_key()
            counts.append(sent.count)

        counts: list[int] = []
        for _ in range(3):
            rekey_after_a_flush()
        assert min(counts) == 2
        assert SessionStore(session.session_key)["a"] == "1"
        assert SessionStore(session.session_key).exists(session.session_key)
        sentinel_setup.primary.client().script_flush()
        asyncio.run(async_save(session.session_key, "a", "3"))
        key = stored_at(session)
    assert session_in(sentinel_setup.replica.client(), key)["a"] == "3"


def test_too_few_replicas_is_a_warning_and_the_write_stands(
    sentinel_setup: SentinelSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """There is one replica; asking for two makes every WAIT fall short."""
    settings = sentinel_settings(sentinel_setup, wait_replicas=2, wait_timeout_ms=20)
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=settings):
        with caplog.at_level(logging.WARNING, "django_prologue_sessions.redis"):
            session = SessionStore()
            session["k"] = "v"
            session.save()
        assert "only 1 of 2 replicas confirmed it within 20 ms" in caplog.text
        assert SessionStore(session.session_key)["k"] == "v"
        caplog.clear()
        with caplog.at_level(logging.WARNING, "django_prologue_sessions.redis"):
            asyncio.run(async_save(session.session_key, "k", "async"))
        assert "only 1 of 2 replicas" in caplog.text
        assert SessionStore(session.session_key)["k"] == "async"


async def async_save(session_key: str | None, key: str, value: str) -> None:
    session = SessionStore(session_key)
    await session.aset(key, value)
    await session.asave()


def test_sentinel_failover_mid_run_loses_no_acknowledged_write() -> None:
    """Requests keep coming while the primary is killed and the replica
    promoted. A request may fail with SessionStoreUnavailable while no primary
    answers; every request that succeeded (each write waited for the replica)
    is there afterwards, nobody is logged out, and the engine carries on."""
    with SentinelSetup() as setup:
        settings = sentinel_settings(
            setup, wait_replicas=1, wait_timeout_ms=200, socket_timeout=0.5
        )
        with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=settings):
            run_through_a_failover(setup)


def run_through_a_failover(setup: SentinelSetup) -> None:
    clients = [Client() for _ in range(4)]
    acknowledged: dict[int, dict[str, str]] = {i: {} for i in range(len(clients))}
    unavailable = 0
    loop = asyncio.new_event_loop()
    async_session = SessionStore()
    loop.run_until_complete(async_save(None, "warm", "up"))
    loop.run_until_complete(async_session.aset("before", "failover"))
    loop.run_until_complete(async_session.asave())

    def request(number: int) -> None:
        nonlocal unavailable
        index = number % len(clients)
        key, value = f"k{number}", f"v{number}"
        try:
            response = clients[index].get("/session/set/", {key: value})
        except SessionStoreUnavailable:
            unavailable += 1
            return
        assert response.status_code == 200
        acknowledged[index][key] = value

    for number in range(40):
        request(number)
    failover = threading.Thread(target=setup.kill_primary_and_wait_for_failover)
    failover.start()
    number = 40
    started = time.monotonic()
    while failover.is_alive():
        request(number)
        number += 1
    failover.join()
    took = time.monotonic() - started
    assert setup.replica.client().info("replication")["role"] == "master"
    during = number - 40

    # The first request after the failover succeeds, on every client.
    for index, client in enumerate(clients):
        assert client.get("/session/set/", {"after": "failover"}).status_code == 200
        acknowledged[index]["after"] = "failover"
    for index, client in enumerate(clients):
        stored = client.get("/session/get/").json()
        assert stored == acknowledged[index], index
    # The async client carries on in its own event loop as well.
    again = SessionStore(async_session.session_key)
    loop.run_until_complete(again.aset("after", "failover"))
    loop.run_until_complete(again.asave())
    loop.run_until_complete(_close_async_clients())
    loop.close()
    assert dict(SessionStore(async_session.session_key).items()) == {
        "before": "failover",
        "after": "failover",
    }
    print(  # shown with -s; the README's "Redis at scale" quotes it
        f"failover: {took:.1f} s, {during} requests during it, "
        f"{unavailable} unavailable"
    )


async def _close_async_clients() -> None:
    handle = _redis_connection.async_redis()
    await handle.client.aclose()


# Cluster -----------------------------------------------------------------------


def cluster_settings(setup: ClusterSetup, **more: Any) -> dict[str, Any]:
    return {"cluster": True, "startup_nodes": setup.startup_nodes, **more}


def test_cluster_sessions_spread_over_every_primary(
    cluster_setup: ClusterSetup,
) -> None:
    with override_settings(
        SESSION_ENGINE=ENGINE, SESSION_REDIS=cluster_settings(cluster_setup)
    ):
        sessions = []
        for number in range(30):
            session = SessionStore()
            session["n"] = number
            session.save()
            sessions.append(session)
        asyncio.run(async_save(sessions[0].session_key, "async", "yes"))
        for number, session in enumerate(sessions):
            again = SessionStore(session.session_key)
            assert again["n"] == number
            again["n"] = -number
            again.save()
        keys = [stored_at(session) for session in sessions]
    holders = set()
    for number, key in enumerate(keys):
        slot = redis.crc.key_slot(key.encode())
        (node,) = [
            node
            for node in cluster_setup.nodes
            if slot in owned_slots(node.client(), node.port)
        ]
        assert session_in(node.client(), key)["n"] == -number
        holders.add(node.port)
    assert holders == {node.port for node in cluster_setup.nodes}
    first = keys[0]
    slot = redis.crc.key_slot(first.encode())
    (holder,) = [
        n for n in cluster_setup.nodes if slot in owned_slots(n.client(), n.port)
    ]
    assert session_in(holder.client(), first)["async"] == "yes"


def owned_slots(client: Any, port: int) -> range:
    for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
        if int(primary[1]) == port:
            return range(int(start), int(end) + 1)
    return range(0)


def test_cluster_scripts_take_several_keys_of_one_slot(
    cluster_setup: ClusterSetup,
) -> None:
    """What the per-user index needs: one script, several keys, one hash tag,
    routed by the cluster client to the node that holds them."""
    from django_prologue_sessions.backends.redis.scripts import LuaScript

    script = LuaScript(
        "redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) "
        "return redis.call('MGET', KEYS[1], KEYS[2])"
    )
    keys = ["a:{user:7}", "b:{user:7}"]
    with override_settings(
        SESSION_ENGINE=ENGINE, SESSION_REDIS=cluster_settings(cluster_setup)
    ):
        assert _redis_connection.sync_redis().run_script(script, keys, ["x"]) == [
            b"x",
            b"x",
        ]
        assert asyncio.run(run_async_script(script, keys)) == [b"y", b"y"]


async def run_async_script(script: Any, keys: list[str]) -> Any:
    handle = _redis_connection.async_redis()
    try:
        return await handle.run_script(script, keys, ["y"])
    finally:
        await handle.client.aclose()


def test_cluster_wait_without_replicas_warns(
    cluster_setup: ClusterSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """This cluster's primaries have no replicas: WAIT reaches the node that
    holds the session and reports 0, which is logged; the write stands."""
    settings = cluster_settings(cluster_setup, wait_replicas=1, wait_timeout_ms=10)
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=settings):
        with caplog.at_level(logging.WARNING, "django_prologue_sessions.redis"):
            session = SessionStore()
            session["k"] = "v"
            session.save()
            asyncio.run(async_save(session.session_key, "k2", "v2"))
        assert dict(SessionStore(session.session_key).items()) == {
            "k": "v",
            "k2": "v2",
        }
        holder = node_holding(cluster_setup, stored_at(session))
        waits = wait_calls(holder)
        session.flush()  # an UNLINK, and its WAIT on the same node
        assert wait_calls(holder) == waits + 1
    warnings = [r for r in caplog.records if "0 of 1 replicas" in r.getMessage()]
    assert len(warnings) == 3


def node_holding(setup: ClusterSetup, key: str) -> Any:
    slot = redis.crc.key_slot(key.encode())
    (node,) = [n for n in setup.nodes if slot in owned_slots(n.client(), n.port)]
    return node


def wait_calls(node: Any) -> int:
    stats = node.client().info("commandstats").get("cmdstat_wait", {"calls": 0})
    return int(stats["calls"])


# A user's sessions and their index, in one slot ----------------------------------


def topology_settings(topology: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """``SESSION_REDIS`` for a cluster, or Sentinel with every write waited on."""
    if topology == "cluster":
        return cluster_settings(request.getfixturevalue("cluster_setup"))
    return sentinel_settings(
        request.getfixturevalue("sentinel_setup"), wait_replicas=1, wait_timeout_ms=500
    )


@pytest.mark.parametrize("topology", ["cluster", "sentinel with WAIT"])
def test_a_users_sessions_and_index_in_each_topology(
    topology: str, request: pytest.FixtureRequest
) -> None:
    """Scripts that touch a session and its user's index (several keys, one
    hash tag) run on a cluster and, with WAIT, through Sentinel; so does
    flash_user()."""
    options = topology_settings(topology, request)
    with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
        user = f"user-{topology}"
        keys = set()
        for device in ("phone", "laptop"):
            session = SessionStore()
            session.update({"_auth_user_id": user, "device": device})
            session.save()
            keys.add(session.session_key)
        asyncio.run(async_login(user))
        listed = {s.id for s in SessionStore.list_user_sessions(user)}
        assert {session_id(key) for key in keys} < listed
        assert len(listed) == 3
        # flash_user(): the index a page at a time, the page's sessions in
        # one MGET (one slot), then a CHANGE per session.
        with override_settings(MESSAGE_STORAGE=SESSION_MESSAGES):
            assert flash_user(user, "sync") == 3
            assert asyncio.run(async_flash(user, "async")) == 3
        for key in keys:
            stored = SessionStore(key)["_messages"]
            assert (stored.count('"sync"'), stored.count('"async"')) == (1, 1)
        kept = sorted(keys)[0]
        assert SessionStore.revoke_user_sessions(user, keep=session_id(kept)) == 2
        listed = {s.id for s in SessionStore.list_user_sessions(user)}
        assert listed == {session_id(kept)}
        assert SessionStore(kept)["device"] in ("phone", "laptop")


async def async_flash(user: str, message: str) -> int:
    try:
        return await aflash_user(user, message)
    finally:
        await _close_async_clients()


@pytest.mark.parametrize("topology", ["cluster", "sentinel with WAIT"])
def test_the_idle_timeout_slides_in_each_topology(
    topology: str, request: pytest.FixtureRequest
) -> None:
    """The load's GET and PTTL in one pipeline (one node's, on a cluster), and
    the refresh (EXPIRE, or TOUCH with the index entry) with its WAIT."""
    options = topology_settings(topology, request)
    with override_settings(
        SESSION_ENGINE=ENGINE,
        SESSION_REDIS=options,
        PROLOGUE_SESSIONS_IDLE_TIMEOUT=100,
    ):
        handle = _redis_connection.sync_redis()
        for user in (None, f"idle-{topology}"):
            session = SessionStore()
            session["device"] = "phone"
            if user:
                session["_auth_user_id"] = user
            session.save()
            key = stored_at(session)
            for asynchronous in (False, True):
                handle.execute("PEXPIRE", key, 40_000, write=True)
                loading = SessionStore(session.session_key)
                if asynchronous:
                    assert asyncio.run(closing(loading.aload()))["device"] == "phone"
                else:
                    assert loading.load()["device"] == "phone"
                assert handle.execute("PTTL", key) > 90_000
            if user:
                listed = SessionStore.list_user_sessions(user)
                assert [s.id for s in listed] == [session_id(session.session_key)]


async def async_login(user: str) -> None:
    session = SessionStore()
    await session.aset("_auth_user_id", user)
    await session.asave()


def test_a_cluster_node_down_is_unavailable_not_a_logout() -> None:
    """The node that holds a session dies: its requests fail with
    SessionStoreUnavailable, after one retry, and the cookie stays."""
    with ClusterSetup(primaries=3) as setup:
        options = cluster_settings(setup, socket_timeout=0.5)
        with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=options):
            client = Client()
            client.get("/session/set/", {"user": "ann"})
            cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
            key = SessionStore.redis_key(cookie)
            slot = redis.crc.key_slot(key.encode())
            (holder,) = [
                n for n in setup.nodes if slot in owned_slots(n.client(), n.port)
            ]
            holder.kill()
            with pytest.raises(SessionStoreUnavailable):
                client.get("/session/get/")
            with pytest.raises(SessionStoreUnavailable):
                asyncio.run(async_save(cookie, "k", "v"))
            assert client.cookies[django_settings.SESSION_COOKIE_NAME].value == cookie
