"""Our cookie and memory engines against Django's, side by side in one process.

    python -m bench.side_by_side [--family cookie|memory] [--number N] [--repeat R]
    python -m bench.side_by_side --callgrind [--family ...] [--number N]
    python -m bench.side_by_side --profile ENGINE SCENARIO [--number N]

Each engine gets a WSGI handler of its own, built under its ``SESSION_ENGINE``
(``SessionMiddleware`` reads it once), and serves the suite's views and
session (``bench/urls.py``) through ``bench.worker.request()``: the request
cycle a server runs, without the socket. The engines of a pair take turns, a
round of ``number`` requests each, the order flipping every round, so that the
machine's drift hits both alike; the clock is this process's CPU time. Printed:
the median µs per request of each engine and the median of the round-by-round
ratios Django / ours (above 1: ours is faster), the cookie each cookie engine
sets, and the memory (tracemalloc) each in-process store holds per session.

``--callgrind`` counts instructions instead, which other processes on the
machine do not change: each engine and scenario runs under
``valgrind --tool=callgrind`` twice, with ``number`` and ``2 * number``
requests after the same warm-up, and the difference divided by ``number`` is
the instructions of one request.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

PAIRS = {
    # family: (ours, Django's), names of bench/engines.py
    "cookie": ("prologue-signed", "django-signed"),
    "memory": ("prologue-memory", "django-cache-locmem"),
}
SCENARIOS = ("create", "read", "modify")
WARMUP = 50


def configure() -> None:
    from bench.engines import get_engine
    from bench.small_runs import SESSIONS, setup_django

    engine_settings: dict[str, Any] = {}
    for pair in PAIRS.values():
        for name in pair:
            engine_settings.update(get_engine(name).settings(""))
    setup_django(
        "bench.urls",
        INSTALLED_APPS=["django.contrib.sessions", "django_prologue_sessions"],
        MIDDLEWARE=[SESSIONS],
        **engine_settings,
    )


class Served:
    """One engine behind a WSGI handler of its own, and its scenario fixtures."""

    def __init__(self, name: str) -> None:
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import override_settings

        from bench.engines import get_engine

        self.name = name
        self.module = get_engine(name).module
        self.cookie_name = settings.SESSION_COOKIE_NAME
        with override_settings(SESSION_ENGINE=self.module):
            self.app = WSGIHandler()

    def reset(self) -> None:
        """Empty stores, so that no round evicts and each starts alike."""
        from bench.worker import clear_stores

        clear_stores(self.module)

    def send(self, scenario: str, cookie: str | None) -> str | None:
        from bench.worker import request

        return request(self.app, f"/{scenario}/", cookie, self.cookie_name)

    def requests(self, scenario: str) -> Callable[[int], None]:
        """A function sending ``n`` requests of ``scenario``, fixture made."""
        from bench.worker import request

        self.reset()
        cookie = None if scenario == "create" else self.send("create", None)
        app, path, name = self.app, f"/{scenario}/", self.cookie_name

        def send(n: int) -> None:
            for _ in range(n):
                request(app, path, cookie, name)

        send(WARMUP)
        return send


def time_pair(
    family: str, scenario: str, number: int, repeat: int
) -> tuple[dict[str, float], float]:
    """Median CPU µs per request of each engine, and the median ratio theirs/ours."""
    ours, theirs = (Served(name) for name in PAIRS[family])
    senders = {engine.name: engine.requests(scenario) for engine in (ours, theirs)}
    times: dict[str, list[float]] = {ours.name: [], theirs.name: []}
    for round_ in range(repeat):
        order = (ours, theirs) if round_ % 2 == 0 else (theirs, ours)
        for engine in order:
            if scenario == "create":
                engine.reset()
            started = time.process_time_ns()
            senders[engine.name](number)
            elapsed = time.process_time_ns() - started
            times[engine.name].append(elapsed / number / 1000)
    ratio = statistics.median(
        t / o for o, t in zip(times[ours.name], times[theirs.name], strict=True)
    )
    return {name: statistics.median(t) for name, t in times.items()}, ratio


def cookie_sizes(family: str) -> dict[str, int]:
    """Bytes of the cookie value each engine sets for a new session."""
    sizes = {}
    for name in PAIRS[family]:
        engine = Served(name)
        engine.reset()
        cookie = engine.send("create", None)
        sizes[name] = len((cookie or "=").split("=", 1)[1])
    return sizes


def bytes_per_session(family: str, count: int = 10_000) -> dict[str, float]:
    """Memory each in-process store holds per stored session (tracemalloc),
    ``count`` sessions created through the request cycle."""
    sizes = {}
    for name in PAIRS[family]:
        engine = Served(name)
        engine.reset()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            engine.send("create", None)
        gc.collect()
        sizes[name] = (tracemalloc.get_traced_memory()[0] - before) / count
        tracemalloc.stop()
        engine.reset()
    return sizes


def instructions(engine: str, scenario: str, requests: int) -> int:
    """Instructions callgrind counts for the whole process: set-up, warm-up and
    ``requests`` requests."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}/callgrind.out",
                sys.executable,
                "-m",
                "bench.side_by_side",
                "--run",
                engine,
                scenario,
                "--number",
                str(requests),
            ],
            capture_output=True,
            text=True,
            check=True,
            # The same hashes in every run, so that runs differ in nothing else.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"No count from callgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(engine: str, scenario: str, number: int) -> float:
    return (
        instructions(engine, scenario, 2 * number)
        - instructions(engine, scenario, number)
    ) / number


def profile(engine: str, scenario: str, number: int, top: int = 25) -> None:
    """Print cProfile's view of ``number`` requests, by own time."""
    send = Served(engine).requests(scenario)
    profiler = cProfile.Profile()
    profiler.enable()
    send(number)
    profiler.disable()
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=[*PAIRS, "both"], default="both")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--number", type=int, default=200, help="requests a round")
    parser.add_argument("--repeat", type=int, default=41, help="rounds")
    parser.add_argument(
        "--sessions", type=int, default=10_000, help="stored to measure bytes each"
    )
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--profile", nargs=2, metavar=("ENGINE", "SCENARIO"))
    # One engine's scenario, untimed: what --callgrind runs under valgrind.
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    families = list(PAIRS) if args.family == "both" else [args.family]
    scenarios = args.scenario or SCENARIOS

    configure()
    if args.run:
        Served(args.run[0]).requests(args.run[1])(args.number)
        return
    if args.profile:
        profile(*args.profile, number=args.number)
        return
    if args.callgrind:
        print("Instructions per request (callgrind), ours and Django's:")
        for family in families:
            ours, theirs = PAIRS[family]
            for scenario in scenarios:
                mine = per_request(ours, scenario, args.number)
                peer = per_request(theirs, scenario, args.number)
                print(
                    f"  {family:7}{scenario:8}{mine:>10.0f}{peer:>10.0f}"
                    f"{peer / mine:>8.3f}x"
                )
        return
    print(
        f"{args.repeat} rounds of {args.number} requests per engine, taking "
        "turns; median CPU µs per request, and the median round-by-round ratio "
        "Django / ours (above 1: ours is faster)."
    )
    for family in families:
        ours, theirs = PAIRS[family]
        print(f"\n{family}: {ours} vs {theirs}")
        for scenario in scenarios:
            times, ratio = time_pair(family, scenario, args.number, args.repeat)
            print(
                f"  {scenario:8}{times[ours]:>9.2f}{times[theirs]:>9.2f}{ratio:>8.3f}x"
            )
        if family == "cookie":
            print(f"  cookie bytes: {cookie_sizes(family)}")
        else:
            sizes = bytes_per_session(family, args.sessions)
            print(
                "  bytes per stored session: "
                + ", ".join(f"{name} {size:.0f}" for name, size in sizes.items())
            )


if __name__ == "__main__":
    main()
