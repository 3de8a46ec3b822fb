"""Throughput under load: the example site under a real WSGI server.

For each Redis engine, the example project (``example_project/``) is served by
gunicorn (``gthread`` workers) on a free loopback port, with its
``SESSION_ENGINE`` set to that engine; all the servers are up at once. Client
threads, each a visitor with a session of its own on a keep-alive connection,
load the home page, which adds one to a visit counter in the session. The
servers take turns: a burst of requests each, in a turning order, so that a
busy moment of the machine does not fall on one engine only. The run is
bounded in requests and in time. Afterwards each client reads its counter: it
must equal the visits that were answered, or an update was lost.
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.engines import Engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"


class Client:
    """One visitor: a session of its own, on a keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.latencies: list[float] = []
        self.counter: int | None = None
        self.cookie: str | None = None

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def _get(self, conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        for header in response.headers.get_all("Set-Cookie") or ():
            if header.startswith("sessionid="):
                self.cookie = header.split(";", 1)[0]
        return response.status, body

    def burst(self, requests: int, deadline: float, start: threading.Barrier) -> None:
        """Visit the home page ``requests`` times, or until ``deadline``."""
        conn = self._connect()
        start.wait()
        done = 0
        try:
            while done < requests and time.monotonic() < deadline:
                done += 1
                began = time.perf_counter()
                try:
                    status, _ = self._get(conn, "/")
                except (OSError, http.client.HTTPException) as exc:
                    self._error(repr(exc))
                    conn.close()
                    conn = self._connect()
                    continue
                self.latencies.append(time.perf_counter() - began)
                if status == 200:
                    self.ok += 1
                else:
                    self._error(f"HTTP {status}")
        finally:
            conn.close()

    def read_counter(self) -> None:
        conn = self._connect()
        try:
            status, body = self._get(conn, "/bench/visits/")
            if status == 200:
                self.counter = int(body)
            else:
                self._error(f"reading the counter: HTTP {status}")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._error(f"reading the counter: {exc!r}")
        finally:
            conn.close()

    def _error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(text)


class Server:
    """The example project on ``engine``, under a WSGI server on loopback."""

    #: A URL that answers 200 once the server serves.
    probe_path = "/bench/visits/"

    def __init__(
        self,
        engine: Engine,
        redis_url: str,
        *,
        kind: str,
        port: int,
        workers: int,
        threads: int,
    ) -> None:
        self.engine = engine
        self.kind = kind
        self.port = port
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.load_settings",
            "BENCH_LOAD_ENGINE": engine.name,
            "PROLOGUE_EXAMPLE_ENGINE": "redis",
            "PROLOGUE_EXAMPLE_REDIS_URL": redis_url,
            "PROLOGUE_EXAMPLE_DEBUG": "0",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]
            ),
        }
        if kind == "gunicorn":
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(threads),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "django.core.wsgi:get_wsgi_application()",
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "bench.wsgiref_server",
                f"127.0.0.1:{port}",
            ]
        self.start(command, env)

    def start(self, command: list[str], env: dict[str, str]) -> None:
        # A file, not a pipe: a chatty server must never block on a full pipe.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log
        )

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The server exited with {self.process.returncode}:\n"
                    f"{self.log_text()}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", self.probe_path)
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"The server did not answer on port {self.port}:\n{self.log_text()}"
                )
            time.sleep(0.1)

    def log_text(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> str:
        """Stop the server; its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        text = self.log_text()
        self.log.close()
        return text


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` whole shares that differ by one at most."""
    return [total // parts + (index < total % parts) for index in range(parts)]


def start_serving(servers: dict[str, Any]) -> dict[str, str]:
    """Wait for each server to serve; stop and drop those that cannot, and
    return why each of them failed, by name."""
    failed: dict[str, str] = {}
    for name, server in list(servers.items()):
        try:
            server.wait_until_serving()
        except RuntimeError as exc:
            failed[name] = str(exc)
            servers.pop(name).stop()
    return failed


def turns(
    names: list[str], requests: int, bursts: int
) -> Iterator[tuple[int, int, list[str]]]:
    """``(burst number, share, names)`` for each burst: every name gets the
    share in turn, the first to go moving on by one each burst, so that a
    slow moment of the machine spreads over all of them."""
    for index, share in enumerate(shares(requests, bursts)):
        turn = index % len(names) if names else 0
        yield index + 1, share, names[turn:] + names[:turn]


def burst(team: list[Client], requests: int, seconds: float) -> float:
    """Every client at once, ``requests`` in all; the seconds it took."""
    deadline = time.monotonic() + seconds
    start = threading.Barrier(len(team) + 1)
    threads = [
        threading.Thread(target=client.burst, args=(share, deadline, start))
        for client, share in zip(team, shares(requests, len(team)), strict=True)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def _percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000, 2)


def run_load(
    engines: list[Engine],
    redis_url: str,
    *,
    kind: str,
    ports: list[int],
    clients: int,
    requests: int,
    seconds: float,
    bursts: int,
    workers: int,
    threads: int,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Load the example on each engine; the numbers of each engine's run.

    ``requests`` and ``seconds`` bound each engine's share, spread over
    ``bursts`` bursts.
    """
    servers: dict[str, Server] = {}
    failed: dict[str, str] = {}
    teams: dict[str, list[Client]] = {}
    elapsed: dict[str, float] = {}
    try:
        for engine, port in zip(engines, ports, strict=True):
            servers[engine.name] = Server(
                engine,
                redis_url,
                kind=kind,
                port=port,
                workers=workers,
                threads=threads,
            )
        failed = start_serving(servers)
        for name, server in servers.items():
            teams[name] = [Client(server.port) for _ in range(clients)]
            elapsed[name] = 0.0
        for number, share, order in turns(list(teams), requests, bursts):
            for name in order:
                elapsed[name] += burst(teams[name], share, seconds / bursts)
            log(f"  load burst {number}/{bursts}")
        for team in teams.values():
            for client in team:
                client.read_counter()
    finally:
        logs = {name: server.stop() for name, server in servers.items()}
    runs: list[dict[str, Any]] = []
    for engine in engines:
        if engine.name in failed:
            runs.append(
                {"engine": engine.name, "server": kind, "failed": failed[engine.name]}
            )
            continue
        runs.append(
            {
                "engine": engine.name,
                "server": kind,
                "clients": clients,
                **outcome(teams[engine.name], elapsed[engine.name]),
                "server_log": logs.get(engine.name, "")[-2000:],
            }
        )
    return runs


def outcome(team: list[Client], took: float) -> dict[str, Any]:
    """What a team of clients saw in ``took`` seconds of bursts."""
    answered = sum(client.ok for client in team)
    latencies = sorted(t for client in team for t in client.latencies)
    return {
        "requests": answered,
        "errors": sum(client.errors for client in team),
        "error_samples": [e for c in team for e in c.error_samples][:5],
        "lost_updates": sum(
            max(0, client.ok - client.counter)
            for client in team
            if client.counter is not None
        ),
        "counters_unread": sum(client.counter is None for client in team),
        "seconds": round(took, 3),
        "requests_per_second": round(answered / took, 1) if took else 0.0,
        "p50_ms": (
            round(statistics.median(latencies) * 1000, 2) if latencies else None
        ),
        "p99_ms": _percentile(latencies, 0.99),
    }
