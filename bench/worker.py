"""One engine in a process of its own: ``python -m bench.worker``.

Drives Django's real WSGI handler (``SessionMiddleware`` and a view, the
request cycle a server runs, without the socket) through the four scenarios.
``python -m bench`` starts one worker per engine, each under its own settings,
and asks them in turn for a sample at a time (one JSON line per command and
per reply, on stdin and stdout), so that every engine's samples are taken
seconds apart from the others', against the same Redis server.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import time
import traceback
from collections.abc import Iterable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from bench.engines import get_engine

BASE_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "testserver",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "testserver",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}

PACKAGES = ("django", "redis", "django-redis", "django-redis-sessions", "cryptography")

WsgiApp = Any


class BenchError(RuntimeError):
    pass


def request(
    app: WsgiApp, path: str, cookie: str | None, cookie_name: str
) -> str | None:
    """Send one GET through the WSGI app; return the session cookie it sets."""
    environ = {**BASE_ENVIRON, "PATH_INFO": path, "wsgi.input": io.BytesIO()}
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> None:
        started.append((status, headers))

    body: Iterable[bytes] = app(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        body.close()  # type: ignore[attr-defined]
    status, headers = started[0]
    if not status.startswith("200"):
        raise BenchError(f"GET {path} answered {status}")
    prefix = f"{cookie_name}="
    for name, value in headers:
        if name == "Set-Cookie" and value.strip().startswith(prefix):
            return value.strip().split(";", 1)[0]
    return None


def clear_stores(module: str) -> None:
    """Empty the default cache, and the in-process store of the engine
    ``module`` if it has one."""
    from django.core.cache import caches

    caches["default"].clear()
    store = import_module(module).SessionStore if module else None
    clear_all = getattr(store, "clear_all", None)
    if clear_all is not None:
        clear_all()


class Worker:
    def __init__(self, engine_name: str, redis_url: str) -> None:
        import django
        from django.conf import settings
        from django.core.wsgi import get_wsgi_application

        django.setup()
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.engine = get_engine(engine_name)
        self.app = get_wsgi_application()
        self.prefix = "/" if self.engine.module else "/floor/"  # the bare floor
        self.redis: Any = None
        if self.engine.uses_redis:
            import redis

            self.redis = redis.Redis.from_url(redis_url)

    def path(self, scenario: str) -> str:
        return f"{self.prefix}{scenario}/"

    def reset(self) -> None:
        """Start from empty stores, so that every repeat sees the same state."""

        if self.redis is not None:
            self.redis.flushdb()
        clear_stores(self.engine.module)

    def fixture(self, scenario: str) -> str | None:
        """Reset, then the cookie of a stored session of typical size."""
        self.reset()
        if scenario == "create":
            return None
        if not self.engine.module:  # the bare floor
            from bench.urls import PAYLOAD

            self.redis.set("bench:floor:fixture", PAYLOAD)
            return f"{self.cookie_name}=bench-floor-fixture-{'x' * 13}"
        cookie = request(self.app, self.path("create"), None, self.cookie_name)
        if cookie is None:
            raise BenchError("Creating the session set no cookie.")
        return cookie

    def run(self, scenario: str, requests: int, warmup: int) -> tuple[float, float]:
        """Time ``requests`` requests after ``warmup``: microseconds per request,
        of the wall clock and of this process's CPU time."""
        cookie = self.fixture(scenario)
        path = self.path(scenario)
        app = self.app
        for _ in range(warmup):
            request(app, path, cookie, self.cookie_name)
        gc.collect()
        cpu_started = time.process_time_ns()
        started = time.perf_counter_ns()
        for _ in range(requests):
            request(app, path, cookie, self.cookie_name)
        elapsed = time.perf_counter_ns() - started
        cpu = time.process_time_ns() - cpu_started
        return elapsed / requests / 1000, cpu / requests / 1000

    def _server_counts(self) -> tuple[int, int, dict[str, tuple[int, int]], float]:
        """Reads, commands, each command's (calls, µs), and the server's CPU
        time in µs (``INFO cpu``, user and system: I/O included), server-wide."""
        stats = self.redis.info("stats")
        # Redis < 7 has no read counter: commands stand in for round trips.
        reads = stats.get("total_reads_processed", stats["total_commands_processed"])
        per_command = {
            name.removeprefix("cmdstat_"): (int(data["calls"]), int(data["usec"]))
            for name, data in self.redis.info("commandstats").items()
        }
        cpu = self.redis.info("cpu")
        cpu_us = (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6
        return (
            int(reads),
            int(stats["total_commands_processed"]),
            per_command,
            cpu_us,
        )

    def count_round_trips(self, scenario: str, requests: int) -> dict[str, Any]:
        """Round trips and commands per request, as the Redis server counts them.

        Server-wide counters, so that a peer's own client is counted the same
        as ours; the INFO probes' own share is measured and taken off. Also
        each command's calls per request and server time per call (``INFO
        commandstats``; a script's time includes the commands it calls, which
        are listed too).
        """
        if self.redis is None:
            return {
                "round_trips": None,
                "commands": None,
                "server": None,
                "server_cpu_us": None,
            }
        cookie = self.fixture(scenario)
        path = self.path(scenario)
        for _ in range(5):  # connections and their handshakes happen here
            request(self.app, path, cookie, self.cookie_name)
        first = self._server_counts()
        second = self._server_counts()
        probe = (second[0] - first[0], second[1] - first[1], second[3] - first[3])
        before = self._server_counts()
        for _ in range(requests):
            request(self.app, path, cookie, self.cookie_name)
        after = self._server_counts()
        reads = (after[0] - before[0] - probe[0]) / requests
        commands = (after[1] - before[1] - probe[1]) / requests
        server_cpu = (after[3] - before[3] - probe[2]) / requests
        server = {}
        for name, (calls, usec) in after[2].items():
            calls_before, usec_before = before[2].get(name, (0, 0))
            if name != "info" and calls > calls_before:
                server[name] = (
                    round((calls - calls_before) / requests, 2),
                    round((usec - usec_before) / (calls - calls_before), 2),
                )
        return {
            "round_trips": round(reads, 2),
            "commands": round(commands, 2),
            "server": server,
            "server_cpu_us": round(server_cpu, 1),
        }

    def cookie_bytes(self) -> int | None:
        if not self.engine.module:
            return None
        self.reset()
        cookie = request(self.app, self.path("create"), None, self.cookie_name)
        if cookie is None:
            raise BenchError("Creating the session set no cookie.")
        return len(cookie.split("=", 1)[1])

    def redis_bytes(self) -> tuple[int, int] | None:
        """``MEMORY USAGE`` of one session's keys, and how many keys it has."""
        if self.redis is None:
            return None
        self.reset()
        request(self.app, self.path("create"), None, self.cookie_name)
        keys = list(self.redis.scan_iter(count=1000))
        return sum(int(self.redis.memory_usage(key)) for key in keys), len(keys)

    def store_times(self, number: int, repeats: int) -> dict[str, float] | None:
        """µs per call of the engine's own ``save()`` of a new session and
        ``load()`` of it, with no request around them (and, for the Redis
        engine, of ``session_id()``, which names the session in Redis): the
        fastest of ``repeats`` runs of ``number`` calls, as ``timeit`` advises."""
        if not self.engine.module:
            return None
        from bench.urls import SESSION

        store_class = import_module(self.engine.module).SessionStore

        def save() -> str:
            store = store_class()
            store.update(SESSION)
            store.save()
            return str(store.session_key)

        def best_of(call: Any, fresh: bool) -> float:
            best = float("inf")
            for _ in range(repeats):
                if fresh:
                    self.reset()
                gc.collect()
                started = time.perf_counter_ns()
                for _ in range(number):
                    call()
                best = min(best, time.perf_counter_ns() - started)
            return best / number / 1000

        saving = best_of(save, fresh=True)
        self.reset()
        key = save()
        loading = best_of(lambda: store_class(key).load(), fresh=False)
        self.reset()
        times = {"save": saving, "load": loading}
        if self.engine.name == "prologue-redis":  # a SHA-256 a key a request uses
            from django_prologue_sessions.user_sessions import session_id

            times["session_id"] = best_of(lambda: session_id(key), fresh=False)
        return times

    def profile(self, scenario: str, requests: int, top: int = 30) -> str:
        """cProfile's view of ``requests`` requests: by cumulative time, then own."""
        cookie = self.fixture(scenario)
        path = self.path(scenario)
        for _ in range(50):
            request(self.app, path, cookie, self.cookie_name)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            request(self.app, path, cookie, self.cookie_name)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return out.getvalue()


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def serve(worker: Worker, commands: TextIO, replies: TextIO) -> None:
    """Answer the orchestrator's commands, one JSON line each, until "quit"."""

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    reply({"ready": True, "versions": package_versions()})
    for line in commands:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        try:
            if op == "sample":
                wall, cpu = worker.run(**command)
                reply({"us": wall, "cpu_us": cpu})
            elif op == "count":
                reply(worker.count_round_trips(**command))
            elif op == "sizes":
                memory = worker.redis_bytes()
                reply(
                    {
                        "cookie_bytes": worker.cookie_bytes(),
                        "redis_bytes": None if memory is None else memory[0],
                        "redis_keys": None if memory is None else memory[1],
                    }
                )
            elif op == "floor_trips":
                from bench.urls import FLOOR_TRIPS

                FLOOR_TRIPS.clear()
                FLOOR_TRIPS.update(command["trips"])
                reply({})
            elif op == "store":
                reply({"store": worker.store_times(**command)})
            elif op == "profile":
                reply({"profile": worker.profile(**command)})
            else:
                reply({"error": f"unknown command {op!r}"})
        except Exception:
            reply({"error": traceback.format_exc()})
    worker.reset()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args(argv)

    # Replies go to the original stdout; anything else printed goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.worker_settings"
    os.environ["BENCH_ENGINE"] = args.engine
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    serve(Worker(args.engine, args.redis_url), sys.stdin, replies)


if __name__ == "__main__":
    main()
