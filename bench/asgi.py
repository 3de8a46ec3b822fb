"""Async end to end: three set-ups side by side under one ASGI server.

``python -m bench.asgi`` (or ``python -m bench --only asgi``) serves, each in a
uvicorn process of its own on loopback (one worker, one event loop), the same
async view, which adds one to a visit counter in the session
(``bench/asgi_urls.py``), with:

- ``prologue``: our ``SessionMiddleware`` and our Redis engine;
- ``django-middleware``: Django's ``SessionMiddleware`` and our Redis engine;
- ``django-cache``: Django's ``SessionMiddleware`` and Django's cache engine
  on django-redis.

Concurrent clients, each a visitor with a session of its own on a keep-alive
connection (``bench/load.py``), load the servers in turns, a burst each. Each
server counts, for the whole process (``bench/asgi_app.py``), its CPU time,
its thread hops (``sync_to_async`` calls, by function) and the threads it
started; read before and after each burst, they give CPU, hops and threads
per request, which a busy machine disturbs much less than requests per
second. Afterwards each client reads its counter, which must equal its visits.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load, report, small_runs

ROOT = Path(__file__).resolve().parent.parent
OUR_MIDDLEWARE = "django_prologue_sessions.middleware.SessionMiddleware"
DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    middleware: str
    #: An engine of ``bench/engines.py``.
    engine: str


SETUPS = (
    Setup(
        "prologue",
        "our middleware + our Redis engine",
        OUR_MIDDLEWARE,
        "prologue-redis",
    ),
    Setup(
        "django-middleware",
        "Django's middleware + our Redis engine",
        DJANGO_MIDDLEWARE,
        "prologue-redis",
    ),
    Setup(
        "django-cache",
        "Django's middleware + Django's cache engine on django-redis",
        DJANGO_MIDDLEWARE,
        "django-cache-django-redis",
    ),
)
BY_NAME = {setup.name: setup for setup in SETUPS}

FULL = {"clients": 16, "requests": 6000, "seconds": 90.0, "bursts": 20, "warmup": 5}
QUICK = {"clients": 2, "requests": 40, "seconds": 10.0, "bursts": 2, "warmup": 2}


def get_setup(name: str) -> Setup:
    try:
        return BY_NAME[name]
    except KeyError:
        raise SystemExit(
            f"Unknown ASGI set-up {name!r}; the set-ups are: {', '.join(BY_NAME)}"
        ) from None


class AsgiServer(load.Server):
    """``bench/asgi_app.py`` under uvicorn on loopback, one worker.

    ``environment`` names the settings (``DJANGO_SETTINGS_MODULE``) and
    whatever they read; ``dev_mode`` runs it with ``PYTHONDEVMODE=1``.
    """

    kind = "uvicorn"
    probe_path = "/_stats/"

    def __init__(
        self, port: int, environment: dict[str, str], *, dev_mode: bool = False
    ) -> None:
        self.port = port
        env = {
            **os.environ,
            **environment,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        }
        if dev_mode:
            env["PYTHONDEVMODE"] = "1"
        self.start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.asgi_app:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--loop",
                "asyncio",
                "--http",
                "h11",
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
        )

    def output(self, since: int = 0) -> str:
        """What the server wrote (stderr) from offset ``since`` on."""
        # The server writes through the same file offset: reading to the end
        # leaves it at the end.
        self.log.seek(since)
        return self.log.read().decode(errors="replace")

    def output_end(self) -> int:
        """The offset of the end of the output so far, for ``output()``."""
        return self.log.seek(0, os.SEEK_END)

    def stats(self) -> dict[str, Any]:
        """The server's counts so far (``bench/asgi_app.py``)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/_stats/")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"/_stats/ answered {response.status}: {body!r}")
            stats: dict[str, Any] = json.loads(body)
            return stats
        finally:
            conn.close()


def _difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    by_function = {
        name: count - before["hops_by_function"].get(name, 0)
        for name, count in after["hops_by_function"].items()
    }
    return {
        "cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
        "hops": after["hops"] - before["hops"],
        "hops_by_function": {k: v for k, v in by_function.items() if v},
        "threads_started": after["threads_started"] - before["threads_started"],
        "requests": after["requests"] - before["requests"],
    }


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key in ("cpu_seconds", "hops", "threads_started", "requests"):
        total[key] = total.get(key, 0) + part[key]
    functions = total.setdefault("hops_by_function", {})
    for name, count in part["hops_by_function"].items():
        functions[name] = functions.get(name, 0) + count


def run(
    redis_url: str,
    *,
    setups: tuple[Setup, ...] = SETUPS,
    clients: int,
    requests: int,
    seconds: float,
    bursts: int,
    warmup: int,
    log: Any = print,
) -> dict[str, Any]:
    """Load each set-up; the numbers of each, and the parameters.

    The Redis database of ``redis_url`` is flushed before and after.
    """
    import redis

    from tests.redis_server import free_port

    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    servers: dict[str, AsgiServer] = {}
    failed: dict[str, str] = {}
    teams: dict[str, list[load.Client]] = {}
    elapsed: dict[str, float] = {}
    counted: dict[str, dict[str, Any]] = {}
    try:
        for setup in setups:
            servers[setup.name] = AsgiServer(
                free_port(),
                {
                    "DJANGO_SETTINGS_MODULE": "bench.asgi_settings",
                    "BENCH_ASGI_SETUP": setup.name,
                    "BENCH_REDIS_URL": redis_url,
                },
            )
        failed = load.start_serving(servers)
        for name, server in servers.items():
            # Warm-up by clients of its own, not counted: imports, connections.
            warm_up = [load.Client(server.port) for _ in range(clients)]
            load.burst(warm_up, warmup * clients, seconds)
            teams[name] = [load.Client(server.port) for _ in range(clients)]
            elapsed[name] = 0.0
            counted[name] = {}
        for number, share, order in load.turns(list(teams), requests, bursts):
            for name in order:
                before = servers[name].stats()
                elapsed[name] += load.burst(teams[name], share, seconds / bursts)
                _add(counted[name], _difference(servers[name].stats(), before))
            log(f"  ASGI burst {number}/{bursts}")
        for team in teams.values():
            for client in team:
                client.read_counter()
    finally:
        logs = {name: server.stop() for name, server in servers.items()}
        store.flushdb()
        store.close()
    runs = []
    for setup in setups:
        if setup.name in failed:
            runs.append({"setup": setup.name, "failed": failed[setup.name]})
            continue
        total = counted[setup.name]
        # Per request the server handled (the clients' errors included).
        handled = total["requests"] or 1
        runs.append(
            {
                "setup": setup.name,
                "label": setup.label,
                **load.outcome(teams[setup.name], elapsed[setup.name]),
                "cpu_us_per_request": round(total["cpu_seconds"] / handled * 1e6, 1),
                "hops_per_request": round(total["hops"] / handled, 3),
                "threads_per_request": round(total["threads_started"] / handled, 3),
                "hops_by_function": {
                    name: round(count / handled, 3)
                    for name, count in sorted(total["hops_by_function"].items())
                },
                "server_log": logs.get(setup.name, "")[-2000:],
            }
        )
    return {
        "runs": runs,
        "params": {
            "clients": clients,
            "requests": requests,
            "seconds": seconds,
            "bursts": bursts,
            "warmup": warmup,
        },
        "server": _server_version(),
    }


def _server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"uvicorn {version('uvicorn')}"
    except PackageNotFoundError:
        return "uvicorn (not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.asgi", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny counts")
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a server whose database may be flushed (default: $REDIS_URL, "
        "else a private server)",
    )
    parser.add_argument("--json", default="", help="also write the results here")
    for key, value in FULL.items():
        parser.add_argument(f"--{key}", type=type(value))
    args = parser.parse_args(argv)
    params: dict[str, Any] = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)

    with small_runs.redis_url(args.redis_url) as redis_url:
        results = run(
            redis_url, **params, log=lambda line: print(line, file=sys.stderr)
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(report.asgi_section(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
