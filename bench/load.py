"""Throughput under load: the example site under a real WSGI server.

For each Redis engine, the example project (``example_project/``) is served by
gunicorn (``gthread`` workers) on a free loopback port, with its
``SESSION_ENGINE`` set to that engine. Client threads, each a visitor with a
session of its own on a keep-alive connection, load the home page, which adds
one to a visit counter in the session. The run is bounded in requests and in
time. Afterwards each client reads its counter: it must equal the visits that
were answered, or an update was lost.
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.engines import Engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"


@dataclass
class Client:
    """One visitor: a session of its own and a keep-alive connection."""

    port: int
    requests: int
    deadline: float
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    counter: int | None = None
    cookie: str | None = None

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

    def run(self, start: threading.Barrier) -> None:
        conn = self._connect()
        start.wait()
        while (
            self.ok + self.errors < self.requests and time.monotonic() < self.deadline
        ):
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


def server_command(server: str, port: int, workers: int, threads: int) -> list[str]:
    if server == "gunicorn":
        return [
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
    return [sys.executable, "-m", "bench.wsgiref_server", f"127.0.0.1:{port}"]


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"The WSGI server exited with {process.returncode}.")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench/visits/")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"The WSGI server did not answer on port {port}.")
        time.sleep(0.1)


def run_engine(
    engine: Engine,
    redis_url: str,
    *,
    server: str,
    port: int,
    clients: int,
    requests: int,
    seconds: float,
    workers: int,
    threads: int,
) -> dict[str, Any]:
    """Serve the example on ``engine`` and load it; the numbers of the run."""
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
    process = subprocess.Popen(
        server_command(server, port, workers, threads),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(process, port)
        per_client = max(1, requests // clients)
        deadline = time.monotonic() + seconds
        team = [Client(port, per_client, deadline) for _ in range(clients)]
        start = threading.Barrier(clients + 1)
        threads_ = [
            threading.Thread(target=client.run, args=(start,)) for client in team
        ]
        for thread in threads_:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads_:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    answered = sum(client.ok for client in team)
    latencies = sorted(t for client in team for t in client.latencies)
    lost = sum(
        max(0, client.ok - client.counter)
        for client in team
        if client.counter is not None
    )
    unread = sum(client.counter is None for client in team)
    return {
        "engine": engine.name,
        "server": server,
        "clients": clients,
        "requests": answered,
        "errors": sum(client.errors for client in team),
        "error_samples": [e for client in team for e in client.error_samples][:5],
        "lost_updates": lost,
        "counters_unread": unread,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(answered / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": (
            round(
                latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2
            )
            if latencies
            else None
        ),
        "server_log": stderr.decode(errors="replace")[-2000:],
    }
