"""Benchmark the session engines against their peers: ``python -m bench``.

Runs, back to back against one real Redis server:

1. the latency mode: every engine of ``bench/engines.py`` in a worker process
   of its own (``bench/worker.py``), through Django's WSGI handler, in four
   scenarios; the workers take turns, a sample each, so that a slow moment of
   the machine spreads over all of them;
2. the load mode: the example project under gunicorn on loopback, loaded by
   concurrent clients, for each Redis engine (``bench/load.py``);
3. the ASGI mode: an async view under uvicorn with our middleware and Redis
   engine, Django's middleware on our engine, and Django's cache engine on
   django-redis (``bench/asgi.py``).

Writes ``results.json``, ``results.md`` and ``results.png`` to ``--out``
(``bench/`` by default). The Redis database it uses is flushed: by default a
private server is started, from ``tests/redis_server.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import asgi, load, report, small_runs
from bench.engines import ENGINES, SCENARIOS, Engine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FLOOR_TRIPS = {"create": 1, "read": 1, "modify": 2}

FULL = {
    "samples": 12,
    "requests": 300,
    "warmup": 20,
    "count_requests": 100,
    "store_calls": 300,
    "store_repeats": 5,
    "load_clients": 8,
    "load_requests": 2000,
    "load_seconds": 20.0,
    "load_bursts": 4,
}
QUICK = {
    "samples": 1,
    "requests": 20,
    "warmup": 5,
    "count_requests": 10,
    "store_calls": 10,
    "store_repeats": 1,
    "load_clients": 2,
    "load_requests": 20,
    "load_seconds": 10.0,
    "load_bursts": 2,
}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class WorkerFailed(RuntimeError):
    pass


class Worker:
    """A ``bench.worker`` process serving one engine, asked one command at a time."""

    def __init__(self, engine: Engine, redis_url: str) -> None:
        self.engine = engine
        # Kept until close(): a failed worker's stderr says why.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.worker",
                "--engine",
                engine.name,
                "--redis-url",
                redis_url,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace")[-3000:]
            raise WorkerFailed(f"exited with {self.process.returncode}:\n{text}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise WorkerFailed(reply["error"])
        return reply

    def ready(self) -> dict[str, Any]:
        return self._reply()

    def ask(self, op: str, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the reply says why
        return self._reply()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write('{"op": "quit"}\n')
                self.process.stdin.close()
                self.process.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def run_latency(
    engines: list[Engine], redis_url: str, params: dict[str, Any]
) -> dict[str, Any]:
    workers = {engine.name: Worker(engine, redis_url) for engine in engines}
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    floor_trips = dict(DEFAULT_FLOOR_TRIPS)
    floor_source = "the Redis engine's targets (our Redis engine did not run)"
    load_averages: list[float] = []

    def attempt(name: str, op: str, **arguments: Any) -> dict[str, Any] | None:
        try:
            return workers[name].ask(op, **arguments)
        except WorkerFailed as exc:
            failed[name] = str(exc)
            results.pop(name, None)
            workers.pop(name).close()
            log(f"  {name} FAILED")
            return None

    try:
        for name, worker in list(workers.items()):
            try:
                results[name] = {
                    "versions": worker.ready()["versions"],
                    "scenarios": {},
                }
            except WorkerFailed as exc:
                failed[name] = str(exc)
                workers.pop(name).close()
        # Round trips and sizes first: the floor makes as many round trips as
        # our Redis engine was just seen to make.
        for name in list(workers):
            if (
                name == "floor"
                and attempt(name, "floor_trips", trips=floor_trips) is None
            ):
                continue
            for scenario in SCENARIOS:
                counted = attempt(
                    name, "count", scenario=scenario, requests=params["count_requests"]
                )
                if counted is None:
                    break
                results[name]["scenarios"][scenario] = {
                    **counted,
                    "us": [],
                    "cpu_us": [],
                }
            else:
                sizes = attempt(name, "sizes")
                if sizes is not None:
                    results[name].update(sizes)
                    alone = attempt(
                        name,
                        "store",
                        number=params["store_calls"],
                        repeats=params["store_repeats"],
                    )
                    if alone is not None:
                        results[name]["store"] = alone["store"]
            if name == "prologue-redis" and name in results:
                floor_trips = {
                    scenario: round(data["round_trips"])
                    for scenario, data in results[name]["scenarios"].items()
                    if data["round_trips"]
                }
                floor_source = "our Redis engine's measured round trips"
        # The samples: engine after engine, scenario after scenario, the
        # engines' order turning from one sample to the next. The load
        # average after each round says whether the machine stayed quiet.
        for index in range(params["samples"]):
            began = time.monotonic()
            names = list(workers)
            turn = index % len(names) if names else 0
            for scenario in SCENARIOS:
                for name in names[turn:] + names[:turn]:
                    if name not in workers:
                        continue
                    sample = attempt(
                        name,
                        "sample",
                        scenario=scenario,
                        requests=params["requests"],
                        warmup=params["warmup"],
                    )
                    if sample is not None:
                        data = results[name]["scenarios"][scenario]
                        data["us"].append(sample["us"])
                        data["cpu_us"].append(sample["cpu_us"])
            took = time.monotonic() - began
            load_averages.append(round(os.getloadavg()[0], 2))
            log(
                f"  sample {index + 1}/{params['samples']} ({took:.1f} s, "
                f"load {load_averages[-1]:g})"
            )
    finally:
        for worker in workers.values():
            worker.close()
    for result in results.values():
        for data in result["scenarios"].values():
            data["us_median"] = statistics.median(data["us"])
            data["cpu_us_median"] = statistics.median(data["cpu_us"])
    return {
        "engines": results,
        "failed": failed,
        "floor_trips": floor_trips,
        "floor_trips_source": floor_source,
        "load_averages": load_averages,
        "params": {key: params[key] for key in FULL if not key.startswith("load")},
    }


def run_load(
    engines: list[Engine], redis_url: str, params: dict[str, Any], server: str
) -> dict[str, Any]:
    import redis

    from tests.redis_server import free_port

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    log(f"Load: {len(engines)} engines under {server}")
    runs = load.run_load(
        engines,
        redis_url,
        kind=server,
        ports=[free_port() for _ in engines],
        clients=params["load_clients"],
        requests=params["load_requests"],
        seconds=params["load_seconds"],
        bursts=params["load_bursts"],
        workers=params["load_workers"],
        threads=params["load_threads"],
        log=log,
    )
    client.flushdb()
    client.close()
    return {
        "runs": runs,
        "params": {key: params[key] for key in params if key.startswith("load")},
    }


def machine(redis_url: str) -> dict[str, Any]:
    import redis

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = redis.Redis.from_url(redis_url).info("server")
    server = (
        f"valkey {info['valkey_version']}"
        if "valkey_version" in info
        else f"redis {info['redis_version']}"
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": server,
    }


def engines_commit() -> str:
    """The commit the engines were measured at, ``+changes`` if edited since."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changes = git("status", "--porcelain", "django_prologue_sessions")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changes else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the session engines against their peers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: checks that it runs"
    )
    parser.add_argument(
        "--only",
        choices=("latency", "load", "asgi"),
        help="run one mode; keep the others'",
    )
    parser.add_argument(
        "--engines", default="", help="comma-separated engine names (default: all)"
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a server whose database may be flushed (default: $REDIS_URL, "
        "else a private server)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench"), help="results folder")
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: write results.md and results.png again from "
        "results.json in --out",
    )
    parser.add_argument("--server", choices=("auto", "gunicorn", "wsgiref"))
    parser.add_argument(
        "--profile",
        default="",
        metavar="ENGINE:SCENARIO",
        help="print a cProfile of one engine in one scenario, and stop",
    )
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value))
    parser.add_argument("--load-workers", type=int, default=2)
    parser.add_argument("--load-threads", type=int, default=4)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stopped with SIGTERM, still stop the worker and the Redis server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    params: dict[str, Any] = dict(QUICK if args.quick else FULL)
    for key in FULL:
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    params["load_workers"] = args.load_workers
    params["load_threads"] = args.load_threads

    if args.report:
        return write_report(Path(args.out))

    chosen = set(args.engines.split(",")) - {""}
    unknown = chosen - {engine.name for engine in ENGINES}
    if unknown:
        log(f"Unknown engines: {', '.join(sorted(unknown))}")
        return 2
    selected = [e for e in ENGINES if not chosen or e.name in chosen]
    engines = [e for e in selected if not e.missing()]
    missing = {e.name: e.missing() for e in selected if e.missing()}

    with small_runs.redis_url(args.redis_url) as redis_url:
        if args.profile:
            return profile(args.profile, redis_url, params)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        previous = out / "results.json"
        results: dict[str, Any] = {}
        if args.only and previous.exists():
            results = json.loads(previous.read_text())
        started = time.monotonic()
        results["run"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(redis_url),
            "commit": engines_commit(),
        }
        if args.only in (None, "latency"):
            log(f"Latency: {len(engines)} engines, {params['samples']} samples")
            results["latency"] = run_latency(engines, redis_url, params)
            results["latency"]["missing"] = missing
        if args.only in (None, "load"):
            load_server = args.server or "auto"
            if load_server == "auto":
                load_server = "gunicorn" if _has("gunicorn") else "wsgiref"
            redis_engines = [e for e in engines if e.family == "redis"]
            results["load"] = run_load(redis_engines, redis_url, params, load_server)
        if args.only in (None, "asgi"):
            log("ASGI: our middleware against Django's, under uvicorn")
            results["asgi"] = asgi.run(
                redis_url, **(asgi.QUICK if args.quick else asgi.FULL), log=log
            )
        results["run"]["seconds"] = round(time.monotonic() - started, 1)
        results["run"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        previous.write_text(json.dumps(results, indent=1) + "\n")
        write_report(out)
        log(f"Ran in {results['run']['seconds']} s.")
        return 0


def write_report(out: Path) -> int:
    """Write results.md and results.png from results.json, and print the report."""
    source = out / "results.json"
    if not source.exists():
        log(f"No {source} to report on: run python -m bench first.")
        return 2
    results = json.loads(source.read_text())
    (out / "results.md").write_text(report.markdown(results))
    charted = report.chart(results, out / "results.png")
    print((out / "results.md").read_text())
    if not charted and "latency" in results:
        log("matplotlib is not installed: no chart (pip install -e '.[bench]').")
    quiet, why = report.quiet_machine(results)
    if not quiet:
        log(f"NOT A QUIET MACHINE ({why}): these figures are not for publishing.")
    log(f"Wrote {out / 'results.md'}.")
    return 0


def profile(target: str, redis_url: str, params: dict[str, Any]) -> int:
    from bench.engines import get_engine

    name, _, scenario = target.partition(":")
    if scenario not in SCENARIOS:
        log(f"--profile wants ENGINE:SCENARIO, a scenario of {', '.join(SCENARIOS)}")
        return 2
    worker = Worker(get_engine(name), redis_url)
    try:
        worker.ready()
        print(
            worker.ask("profile", scenario=scenario, requests=params["requests"])[
                "profile"
            ]
        )
    except WorkerFailed as exc:
        log(str(exc))
        return 1
    finally:
        worker.close()
    return 0


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
