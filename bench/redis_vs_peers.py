"""Redis session engines side by side, through Django's full request cycle.

    pip install -e ".[bench,test]"
    python bench/redis_vs_peers.py [--redis-url URL] [--rounds 15] [--requests 300]

Compares, in one run against one real Redis server:

- ``ours``: ``django_prologue_sessions.backends.redis``;
- ``django-cache``: Django's ``cache`` engine on a django-redis cache;
- ``redis-sessions``: django-redis-sessions (``redis_sessions.session``).

Each engine serves requests through its own ``WSGIHandler`` with only
``SessionMiddleware``: the whole request cycle a production server runs,
minus the network. Four kinds of request:

- create: no cookie; the view sets a key, so the session is created;
- modify: an existing session's cookie; the view changes a key;
- read: an existing session's cookie; the view reads a key;
- untouched: an existing session's cookie; the view ignores the session.

Rounds alternate the engines (in a rotating order) so that background load
hits all of them alike; the figure per engine is the median over rounds of
the mean time per request; the fastest round is the figure least touched by
background load, and so is CPU time (this process's plus the Redis server's,
from INFO cpu), which leaves out the waiting. Round trips are the requests
redis-py sends for one request of each kind; bytes are ``MEMORY USAGE`` of one
stored session. A last table times each engine's SessionStore alone: the part
of a request that the engine decides.
Without ``--redis-url`` (or ``$REDIS_URL``) a private server is started with
the test suite's harness.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = {
    "ours": "django_prologue_sessions.backends.redis",
    "django-cache": "django.contrib.sessions.backends.cache",
    "redis-sessions": "redis_sessions.session",
}
KINDS = ("create", "modify", "read", "untouched")
# Wall-clock µs per request (median and fastest round), and CPU µs per request
# of this process plus the Redis server, which background load barely moves.
FIGURES = ("median_us", "fastest_round_us", "median_cpu_us")
# A logged-in user's session, as django.contrib.auth leaves it.
LOGIN = {
    "_auth_user_id": "1042",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "9f86d081884c7d659a2feaa0c55ad015"
    "a3bf4f1b2b0b822cd15d6c15b0f00a08",
}


def configure(redis_url: str) -> None:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        DEBUG_PROPAGATE_EXCEPTIONS=True,  # a failed request stops the bench
        SECRET_KEY="bench-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        INSTALLED_APPS=["django.contrib.sessions"],
        DATABASES={},
        USE_TZ=True,
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
                "OPTIONS": {"SOCKET_TIMEOUT": 5},
            }
        },
        # Read by both ours and django-redis-sessions (its keys are ours too).
        # Everyone gets a generous timeout: django-redis-sessions' default of
        # 0.1 s fails requests on a busy machine.
        SESSION_REDIS={"url": redis_url, "prefix": "session", "socket_timeout": 5},
    )
    import django

    django.setup()


# Views and URLs -------------------------------------------------------------


def view_set(request: Any) -> Any:
    from django.http import HttpResponse

    if "_auth_user_id" not in request.session:
        request.session.update(LOGIN)
    request.session["counter"] = request.GET.get("n", "0")
    return HttpResponse("ok")


def view_read(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(request.session.get("_auth_user_id", ""))


def view_untouched(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("untouched")


def urls() -> list[Any]:
    from django.urls import path

    return [
        path("set/", view_set),
        path("read/", view_read),
        path("untouched/", view_untouched),
    ]


def __getattr__(name: str) -> Any:
    if name == "urlpatterns":  # built once Django is configured
        return urls()
    raise AttributeError(name)


# Driving a WSGI handler ------------------------------------------------------


def environ(path: str, query: str = "", cookie: str | None = None) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    if cookie:
        env["HTTP_COOKIE"] = f"sessionid={cookie}"
    return env


class Engine:
    def __init__(self, name: str, module: str) -> None:
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler

        self.name = name
        settings.SESSION_ENGINE = module  # SessionMiddleware reads it at init
        self.handler = WSGIHandler()
        self.last_cookie = ""

    def request(self, path: str, query: str = "", cookie: str | None = None) -> str:
        headers: list[tuple[str, str]] = []

        def start_response(status: str, response_headers: Any) -> None:
            assert status.startswith("200"), status
            headers.extend(response_headers)

        body = self.handler(environ(path, query, cookie), start_response)
        b"".join(body)
        body.close()
        for name, value in headers:
            value = value.strip()
            if name == "Set-Cookie" and value.startswith("sessionid="):
                return value.split(";", 1)[0].split("=", 1)[1]
        return ""

    def new_session(self) -> str:
        cookie = self.request("/set/")
        assert cookie, f"{self.name} set no cookie"
        return cookie

    def runner(self, kind: str) -> Callable[[int], None]:
        if kind == "create":
            return lambda i: self.request("/set/", f"n={i}") and None
        cookie = self.new_session()
        if kind == "modify":
            return lambda i: self.request("/set/", f"n={i}", cookie) and None
        path = "/read/" if kind == "read" else "/untouched/"
        return lambda i: self.request(path, "", cookie) and None


@contextmanager
def counting_round_trips() -> Iterator[dict[str, int]]:
    from tests.redis_round_trips import count_round_trips

    # Counted by the server (INFO stats), which every engine here shares.
    with count_round_trips() as counts:
        result: dict[str, int] = {}
        yield result
    result["round_trips"] = counts.count


def round_trips(engine: Engine, kind: str) -> int:
    run = engine.runner(kind)
    run(0)  # warm: connections, scripts
    with counting_round_trips() as result:
        run(1)
    return result["round_trips"]


def stored_bytes(engine: Engine, client: Any) -> int:
    cookie = engine.new_session()
    candidates = [
        f"session:{{{cookie[:8]}}}{cookie[8:]}",
        f"session:{cookie}",
        f":1:django.contrib.sessions.cache{cookie}",
    ]
    for key in candidates:
        if client.exists(key):
            return int(client.memory_usage(key, samples=0))
    raise RuntimeError(f"{engine.name}: no stored session found")


def server_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def store_runner(module: str, kind: str) -> Callable[[int], None]:
    """The engine's SessionStore alone, without Django's request cycle."""
    from importlib import import_module

    store_class = import_module(module).SessionStore

    def create(i: int) -> None:
        session = store_class()
        session.update(LOGIN)
        session["counter"] = str(i)
        session.save()

    if kind == "create":
        return create
    existing = store_class()
    existing.update(LOGIN)
    existing.save()
    key = existing.session_key

    def modify(i: int) -> None:
        session = store_class(key)
        session["counter"] = str(i)
        session.save()

    def read(i: int) -> None:
        store_class(key).get("_auth_user_id")

    return modify if kind == "modify" else read


def measure_stores(rounds: int, requests: int) -> dict[str, dict[str, float]]:
    """Median µs per operation of each engine's SessionStore alone."""
    result: dict[str, dict[str, float]] = {}
    for kind in ("create", "modify", "read"):
        runners = {name: store_runner(module, kind) for name, module in ENGINES.items()}
        times: dict[str, list[float]] = {name: [] for name in runners}
        for round_number in range(rounds):
            names = list(runners)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                run = runners[name]
                start = time.perf_counter()
                for i in range(requests):
                    run(i)
                times[name].append((time.perf_counter() - start) / requests)
        result[kind] = {
            name: round(min(values) * 1e6, 1) for name, values in times.items()
        }
    return result


def measure(
    engines: list[Engine], kind: str, rounds: int, requests: int, client: Any
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per request of each engine, one figure per round: wall-clock
    time, and CPU time of this process plus the Redis server's."""
    runners = {engine.name: engine.runner(kind) for engine in engines}
    for run in runners.values():
        for i in range(50):
            run(i)
    wall: dict[str, list[float]] = {engine.name: [] for engine in engines}
    cpu: dict[str, list[float]] = {engine.name: [] for engine in engines}
    for round_number in range(rounds):
        shift = round_number % len(engines)
        for engine in engines[shift:] + engines[:shift]:
            run = runners[engine.name]
            gc.collect()
            server_before = server_cpu(client)
            cpu_before = time.process_time()
            start = time.perf_counter()
            for i in range(requests):
                run(i)
            wall[engine.name].append((time.perf_counter() - start) / requests)
            used = time.process_time() - cpu_before + server_cpu(client) - server_before
            cpu[engine.name].append(used / requests)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    server = None
    url = args.redis_url
    if not url:
        from tests.redis_server import RedisServer

        server = RedisServer().start()
        url = server.url
    try:
        configure(url)
        import redis

        client = redis.Redis.from_url(url)
        client.flushdb()
        engines = [Engine(name, module) for name, module in ENGINES.items()]
        report: dict[str, Any] = {
            "redis_server": client.info("server").get("redis_version")
        }
        report["round_trips"] = {
            kind: {e.name: round_trips(e, kind) for e in engines} for kind in KINDS
        }
        report["bytes_per_session"] = {e.name: stored_bytes(e, client) for e in engines}
        for figure in FIGURES:
            report[figure] = {}
        for kind in KINDS:
            wall, cpu = measure(engines, kind, args.rounds, args.requests, client)
            for figure, rounds, pick in (
                ("median_us", wall, statistics.median),
                ("fastest_round_us", wall, min),
                ("median_cpu_us", cpu, statistics.median),
            ):
                report[figure][kind] = {
                    name: round(pick(times) * 1e6, 1) for name, times in rounds.items()
                }
        report["store_only_fastest_round_us"] = measure_stores(
            args.rounds, args.requests
        )
        print_report(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        client.close()
    finally:
        if server is not None:
            server.cleanup()


def print_report(report: dict[str, Any]) -> None:
    names = list(ENGINES)
    print(f"Redis {report['redis_server']}; µs per request (round trips)")
    for figure in FIGURES:
        print(
            f"\n{figure:12}" + "".join(f"{n:>18}" for n in names) + "  best peer/ours"
        )
        for kind in KINDS:
            row = report[figure][kind]
            trips = report["round_trips"][kind]
            cells = "".join(f"{row[n]:>12.1f} ({trips[n]} rt)" for n in names)
            best_peer = min(row[n] for n in names[1:])
            print(f"{kind:12}{cells}{best_peer / row['ours']:>15.2f}x")
    print("\nstore only (no request cycle), fastest round, µs per operation")
    for kind, row in report["store_only_fastest_round_us"].items():
        cells = "".join(f"{row[n]:>18.1f}" for n in names)
        best_peer = min(row[n] for n in names[1:])
        print(f"{kind:12}{cells}{best_peer / row['ours']:>15.2f}x")
    sizes = report["bytes_per_session"]
    print(f"\n{'bytes':12}" + "".join(f"{sizes[n]:>18}" for n in names))


if __name__ == "__main__":
    main()
