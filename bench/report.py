"""The benchmark's results as a Markdown report and a chart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.engines import BY_NAME, SCENARIOS

TIMES = "\N{MULTIPLICATION SIGN}"
NONE = "\N{EN DASH}"
# The interval of the measured ratio straddles the target: noise decides.
NOT_SETTLED = "not settled"

# Target: (family, scenario, least speedup over the fastest peer, strict).
# Issue 20's targets for the Redis engine (load+modify 1.1x, read 1.05x).
SPEED_TARGETS = [
    ("redis", "create", 1.3, False),
    ("redis", "modify", 1.1, False),
    ("redis", "read", 1.05, False),
    *(("memory", scenario, 1.0, True) for scenario in SCENARIOS),
    *(("cookie", scenario, 1.0, False) for scenario in SCENARIOS),
]
ROUND_TRIP_TARGETS = {"create": 1, "read": 1, "modify": 2, "untouched": 0}
FLOOR_TARGET = 1.3
OURS_BY_FAMILY = {
    "redis": "prologue-redis",
    "memory": "prologue-memory",
    "cookie": "prologue-signed",
}


def _us(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _label(name: str) -> str:
    engine = BY_NAME.get(name)
    label = engine.label if engine else name
    return f"**{label}**" if engine and engine.ours else label


def median(latency: dict[str, Any], name: str, scenario: str) -> float | None:
    engine = latency["engines"].get(name)
    if engine is None or scenario not in engine["scenarios"]:
        return None
    value: float = engine["scenarios"][scenario]["us_median"]
    return value


def paired_ratios(
    latency: dict[str, Any], top: str, bottom: str, scenario: str, key: str = "us"
) -> list[float]:
    """``top``'s time over ``bottom``'s, sample by sample.

    Sample i of every engine comes from the same turn, taken seconds apart,
    so each pair saw about the same machine: on a busy machine their ratio
    varies less than the times do.
    """
    engines = latency["engines"]
    try:
        a = engines[top]["scenarios"][scenario][key]
        b = engines[bottom]["scenarios"][scenario][key]
    except KeyError:
        return []
    return [x / y for x, y in zip(a, b, strict=False) if y]


def ratio(
    latency: dict[str, Any], top: str, bottom: str, scenario: str, key: str = "us"
) -> float | None:
    """The median of the paired samples' ratios (``paired_ratios``)."""
    pairs = paired_ratios(latency, top, bottom, scenario, key)
    return statistics.median(pairs) if pairs else None


def median_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """A distribution-free confidence interval of at least 95% for the median.

    The k-th smallest and k-th largest value, k the largest rank that leaves
    at most 2.5% on each side (the sign test's binomial); ``None`` below six
    values, too few for any such interval.
    """
    n = len(values)
    k = 0
    while sum(math.comb(n, i) for i in range(k + 1)) / 2**n <= 0.025:
        k += 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


@dataclass(frozen=True)
class PairedRatio:
    """The median of paired ratios, its interval, and how many pairs."""

    median: float
    interval: tuple[float, float] | None
    pairs: int

    @classmethod
    def of(cls, ratios: Sequence[float]) -> PairedRatio | None:
        if not ratios:
            return None
        return cls(statistics.median(ratios), median_interval(ratios), len(ratios))

    def text(self) -> str:
        if self.interval is None:
            pairs = f"{self.pairs} pair" + ("s" if self.pairs != 1 else "")
            spread = f"{pairs}, too few for an interval"
        else:
            low, high = self.interval
            spread = f"95% CI {low:.2f}{NONE}{high:.2f}, {self.pairs} pairs"
        return f"{self.median:.2f}{TIMES} ({spread})"

    def verdict(self, least: float, strict: bool = False, at_most: bool = False) -> str:
        """Met when the whole interval meets the target, missed when none of it does.

        ``least``: the ratio must be above it (``strict``) or at least it;
        ``at_most``: the ratio must be at most ``least`` instead.
        """
        if self.interval is None:
            return NOT_SETTLED
        low, high = self.interval
        if at_most:
            met, missed = high <= least, low > least
        elif strict:
            met, missed = low > least, high <= least
        else:
            met, missed = low >= least, high < least
        return "met" if met else "missed" if missed else NOT_SETTLED


def best_peer(
    latency: dict[str, Any], family: str, scenario: str
) -> tuple[str, float] | None:
    """The fastest peer of ``family`` in ``scenario``: its name and time."""
    timed = [
        (us, name)
        for name in latency["engines"]
        if (engine := BY_NAME.get(name))
        and engine.family == family
        and not engine.ours
        and (us := median(latency, name, scenario)) is not None
    ]
    if not timed:
        return None
    us, name = min(timed)
    return name, us


@dataclass(frozen=True)
class Target:
    """One target of the issue: what it asks, what was measured, met or not."""

    engine: str
    kind: str  # "speed", "round trips", "floor" or "cookie"
    scenario: str
    wanted: str
    measured: str = NONE
    #: "met", "missed", NOT_SETTLED or "not measured".
    verdict: str = "not measured"

    def row(self) -> list[str]:
        verdict = "**missed**" if self.verdict == "missed" else self.verdict
        return [self.wanted, self.measured, verdict]


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def _server_cpu_targets(latency: dict[str, Any]) -> Iterator[Target]:
    """The Redis server's CPU per request: ours no more than the best peer's."""
    engines = latency["engines"]
    for scenario in ("create", "read", "modify"):
        wanted = (
            f"{_label('prologue-redis')} {scenario}: Redis CPU per request no "
            "more than the best peer's"
        )

        def cpu(name: str, scenario: str = scenario) -> float | None:
            data = engines.get(name, {}).get("scenarios", {}).get(scenario, {})
            value = data.get("server_cpu_us")
            return None if value is None else float(value)

        ours = cpu("prologue-redis")
        peers = [
            (value, name)
            for name in engines
            if (engine := BY_NAME.get(name))
            and engine.family == "redis"
            and not engine.ours
            and (value := cpu(name)) is not None
        ]
        if ours is None or not peers:
            yield Target("prologue-redis", "server CPU", scenario, wanted)
            continue
        best, name = min(peers)
        yield Target(
            "prologue-redis",
            "server CPU",
            scenario,
            wanted,
            f"{ours:.1f} µs vs {best:.1f} µs ({_label(name)})",
            _verdict(ours <= best),
        )


def targets(results: dict[str, Any]) -> Iterator[Target]:
    """Each target of the issue, judged on the latency results."""
    latency = results.get("latency")
    if not latency:
        return
    for family, scenario, least, strict in SPEED_TARGETS:
        ours = OURS_BY_FAMILY[family]
        wanted = (
            f"{_label(ours)} {scenario}: "
            + ("faster than" if strict else f"≥ {least:g}{TIMES} as fast as")
            + " the fastest peer"
        )
        peer = best_peer(latency, family, scenario)
        speedup = peer and PairedRatio.of(
            paired_ratios(latency, peer[0], ours, scenario)
        )
        if peer is None or not speedup:
            yield Target(ours, "speed", scenario, wanted)
            continue
        yield Target(
            ours,
            "speed",
            scenario,
            wanted,
            f"{speedup.text()} over {_label(peer[0])}",
            speedup.verdict(least, strict=strict),
        )
    redis = latency["engines"].get("prologue-redis")
    for scenario, wanted_trips in ROUND_TRIP_TARGETS.items():
        wanted = f"{_label('prologue-redis')} {scenario}: {wanted_trips} round trip(s)"
        trips = (
            None
            if redis is None
            else redis["scenarios"].get(scenario, {}).get("round_trips")
        )
        if trips is None:
            yield Target("prologue-redis", "round trips", scenario, wanted)
            continue
        yield Target(
            "prologue-redis",
            "round trips",
            scenario,
            wanted,
            f"{trips:g}",
            _verdict(trips == wanted_trips),
        )
    yield from _server_cpu_targets(latency)
    for scenario in SCENARIOS:
        wanted = (
            f"{_label('prologue-redis')} {scenario}: "
            f"within {FLOOR_TARGET}{TIMES} of the floor"
        )
        times = PairedRatio.of(
            paired_ratios(latency, "prologue-redis", "floor", scenario)
        )
        if times is None:
            yield Target("prologue-redis", "floor", scenario, wanted)
            continue
        yield Target(
            "prologue-redis",
            "floor",
            scenario,
            wanted,
            times.text(),
            times.verdict(FLOOR_TARGET, at_most=True),
        )
    ours_cookie = latency["engines"].get("prologue-signed", {}).get("cookie_bytes")
    django_cookie = latency["engines"].get("django-signed", {}).get("cookie_bytes")
    wanted = f"{_label('prologue-signed')}: cookie no larger than Django's"
    if ours_cookie is None or django_cookie is None:
        yield Target("prologue-signed", "cookie", "", wanted)
    else:
        yield Target(
            "prologue-signed",
            "cookie",
            "",
            wanted,
            f"{ours_cookie} vs {django_cookie} bytes",
            _verdict(ours_cookie <= django_cookie),
        )


def _scenario_cells(
    result: dict[str, Any],
    cell: Callable[[dict[str, Any]], str],
    scenarios: Sequence[str] = SCENARIOS,
) -> list[str]:
    """``cell`` of each scenario an engine ran, in order; NONE for the others."""
    cells = []
    for scenario in scenarios:
        data = result["scenarios"].get(scenario)
        cells.append(cell(data) if data else NONE)
    return cells


def _trips_cell(data: dict[str, Any]) -> str:
    """Round trips, and the commands in brackets where they differ."""
    trips, commands = data.get("round_trips"), data.get("commands")
    if trips is None:
        return NONE
    if commands is not None and commands != trips:
        return f"{trips:g} ({commands:g})"
    return f"{trips:g}"


def _server_cpu_cell(data: dict[str, Any]) -> str:
    cpu = data.get("server_cpu_us")
    return NONE if cpu is None else f"{cpu:.1f}"


def _server_cell(data: dict[str, Any]) -> str:
    server = data.get("server")
    return _server_work(server) if server else NONE


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append(
        "|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|"
    )
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _latency_sections(results: dict[str, Any]) -> list[str]:
    latency = results["latency"]
    engines = latency["engines"]
    params = latency["params"]
    lines = [
        "## Latency",
        "",
        f"Microseconds per request, through Django's WSGI handler "
        f"(`SessionMiddleware` and a view): the median of {params['samples']} "
        f"samples, each the mean time of {params['requests']} requests after "
        f"{params['warmup']} of warm-up, from a fresh store. Each engine runs in "
        "a worker process of its own; the workers take turns, one sample at a "
        "time. Lower is better; ours in bold.",
        "",
    ]
    rows = [
        [_label(name), *_scenario_cells(result, lambda data: _us(data["us_median"]))]
        for name, result in engines.items()
    ]
    lines += _table(["engine", *SCENARIOS], rows)
    spreads = [
        (max(data["us"]) - min(data["us"])) / data["us_median"]
        for result in engines.values()
        for data in result["scenarios"].values()
        if data["us_median"]
    ]
    if spreads:
        lines += [
            "",
            f"Spread of the samples (max minus min, over the median): "
            f"{min(spreads):.0%} at best, {max(spreads):.0%} at worst.",
        ]

    lines += [
        "",
        "The worker's own CPU time per request (median), which a busy machine "
        "disturbs less than the wall clock; for a Redis engine it leaves out "
        "the wait for the server.",
        "",
    ]
    rows = [
        [
            _label(name),
            *_scenario_cells(result, lambda data: _us(data.get("cpu_us_median"))),
        ]
        for name, result in engines.items()
    ]
    lines += _table(["engine", *(f"{s} CPU" for s in SCENARIOS)], rows)

    lines += [
        "",
        "## Redis round trips and sizes",
        "",
        "Round trips per request as the Redis server counts them (`INFO stats` "
        "`total_reads_processed` deltas over "
        f"{params['count_requests']} requests, less the probes' own); commands "
        "in brackets where they differ. Cookie: bytes of the session cookie's "
        "value. Redis: `MEMORY USAGE` of one session's keys.",
        "",
    ]
    rows = []
    for name, result in engines.items():
        cells = [_label(name), *_scenario_cells(result, _trips_cell)]
        cookie = result.get("cookie_bytes")
        cells.append(NONE if cookie is None else str(cookie))
        memory = result.get("redis_bytes")
        keys = result.get("redis_keys", 1)
        cells.append(
            NONE
            if memory is None
            else f"{memory}" + (f" ({keys} keys)" if keys != 1 else "")
        )
        rows.append(cells)
    lines += _table(
        ["engine", *(f"{s} trips" for s in SCENARIOS), "cookie bytes", "Redis bytes"],
        rows,
    )
    lines += [
        "",
        "What the Redis server did per request (`INFO commandstats`): each "
        "command, how many times if more than once, and its server time per "
        "call in µs. A script's time includes the commands it calls, which "
        "are listed after it.",
        "",
    ]
    rows = []
    for name, result in engines.items():
        cells = [
            _label(name),
            *_scenario_cells(result, _server_cell, SCENARIOS[:3]),
        ]
        if any(cell != NONE for cell in cells[1:]):
            rows.append(cells)
    lines += _table(["engine", *SCENARIOS[:3]], rows)
    rows = []
    for name, result in engines.items():
        cells = [_label(name), *_scenario_cells(result, _server_cpu_cell)]
        if any(cell != NONE for cell in cells[1:]):
            rows.append(cells)
    if rows:  # runs before it was measured have none
        lines += [
            "",
            "The Redis server's CPU time per request, in µs (`INFO cpu`, user "
            "plus system, so the server's socket I/O is in it), over the same "
            "requests, less the probes' own:",
            "",
        ]
        lines += _table(["engine", *(f"{s} CPU" for s in SCENARIOS)], rows)
    lines += [
        "",
        f"The floor makes {_trips(latency['floor_trips'])} round trips "
        f"({latency['floor_trips_source']}) in a request with no middleware, "
        "each a command written to a plain socket and its reply read back (no "
        "client library, the session's JSON made once), and sets a cookie "
        "where a session engine would. The floor through SessionMiddleware "
        "makes the same round trips from a session engine that does nothing "
        "else (`bench/floor_engine.py`): what Django's session handling adds, "
        "and the least any session engine can cost.",
    ]

    lines += ["", "## Ours against the fastest peer", ""]
    rows = []
    for family, ours in OURS_BY_FAMILY.items():
        for name in [
            ours,
            *(["prologue-signed-encrypted"] if family == "cookie" else []),
        ]:
            for scenario in SCENARIOS:
                ours_us = median(latency, name, scenario)
                peer = best_peer(latency, family, scenario)
                if ours_us is None or peer is None:
                    continue
                wall = PairedRatio.of(paired_ratios(latency, peer[0], name, scenario))
                cpu = ratio(latency, peer[0], name, scenario, key="cpu_us")
                rows.append(
                    [
                        _label(name),
                        scenario,
                        _us(ours_us),
                        _label(peer[0]),
                        _us(peer[1]),
                        f"{peer[1] / ours_us:.2f}{TIMES}",
                        NONE if wall is None else wall.text(),
                        NONE if cpu is None else f"{cpu:.2f}{TIMES}",
                    ]
                )
    lines += _table(
        [
            "ours",
            "scenario",
            "µs",
            "fastest peer",
            "peer µs",
            "medians' ratio",
            "paired speedup",
            "CPU",
        ],
        rows,
    )
    lines += [
        "",
        "Medians' ratio: peer µs over ours µs, the two medians beside it. "
        "Paired speedup: the median of the ratios of samples taken in the same "
        "turn, with a 95% confidence interval; the targets are judged on it. "
        "Above 1, ours is faster. Where the two ratios differ much, the samples "
        "fall into a fast and a slow group (the machine changed speed during "
        "the run) and the medians of the times are not to be compared; a pair, "
        "taken seconds apart, still is. CPU: the paired ratio of the worker's "
        "CPU time.",
    ]

    params_store = (params.get("store_calls"), params.get("store_repeats"))
    rows = [
        [_label(name), _us(result["store"]["save"]), _us(result["store"]["load"])]
        for name, result in engines.items()
        if result.get("store")
    ]
    if rows:
        lines += [
            "",
            "## The engine alone",
            "",
            "µs per call of the engine's own `save()` of a new session of the "
            "same size and `load()` of it, with no request around them: the "
            f"fastest of {params_store[1]} runs of {params_store[0]} calls. Less "
            "disturbed by a busy machine than a whole request; Redis round trips "
            "included.",
            "",
        ]
        lines += _table(["engine", "save()", "load()"], rows)
        digest = engines.get("prologue-redis", {}).get("store", {}).get("session_id")
        if digest is not None:
            lines += [
                "",
                f"`session_id()`, the SHA-256 that names a Redis session: "
                f"{digest:.2f} µs per call, one for each key a request uses.",
            ]

    plain = engines.get("prologue-signed")
    encrypted = engines.get("prologue-signed-encrypted")
    if plain and encrypted:
        lines += ["", "## The cost of encrypting the cookie", ""]
        rows = []
        for scenario in SCENARIOS:
            a = median(latency, "prologue-signed", scenario)
            b = median(latency, "prologue-signed-encrypted", scenario)
            wall = PairedRatio.of(
                paired_ratios(
                    latency, "prologue-signed-encrypted", "prologue-signed", scenario
                )
            )
            cpu = ratio(
                latency,
                "prologue-signed-encrypted",
                "prologue-signed",
                scenario,
                key="cpu_us",
            )
            if a and b:
                rows.append(
                    [
                        scenario,
                        _us(a),
                        _us(b),
                        NONE if wall is None else _cost(wall),
                        NONE if cpu is None else f"{cpu - 1:+.0%}",
                    ]
                )
        for op in ("save", "load"):
            a = plain.get("store", {}).get(op)
            b = encrypted.get("store", {}).get(op)
            if a and b:
                rows.append([f"`{op}()` alone", _us(a), _us(b), f"{b - a:+.1f} µs", ""])
        rows.append(
            [
                "cookie bytes",
                str(plain.get("cookie_bytes")),
                str(encrypted.get("cookie_bytes")),
                "",
                "",
            ]
        )
        lines += _table(["", "signed µs", "signed + AES-GCM µs", "cost", "CPU"], rows)
        lines += [
            "",
            "Cost: encrypted over plain, the median of the paired samples' "
            "ratios (with its 95% confidence interval), in wall-clock and in CPU "
            "time; for `save()` and `load()` alone, the difference of the "
            "fastest runs.",
        ]

    not_run = [
        f"- {_label(name)}: not importable here ({', '.join(modules)})"
        for name, modules in latency.get("missing", {}).items()
    ] + [
        f"- {_label(name)}: failed: `{_last_line(text)}`"
        for name, text in latency.get("failed", {}).items()
    ]
    if not_run:
        lines += ["", "Not run:", "", *not_run]
    return lines


def _cost(paired: PairedRatio) -> str:
    """A paired ratio as a change: "-1% (-5% to +3%)"."""
    if paired.interval is None:
        return f"{paired.median - 1:+.0%}"
    low, high = paired.interval
    return f"{paired.median - 1:+.0%} ({low - 1:+.0%} to {high - 1:+.0%})"


SCRIPT_COMMANDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


def _server_work(server: dict[str, list[float]]) -> str:
    """Each command and its µs per call: scripts first, then by total time."""

    def order(item: tuple[str, list[float]]) -> tuple[bool, float]:
        name, (calls, usec) = item
        return name not in SCRIPT_COMMANDS, -calls * usec

    parts = []
    for name, (calls, usec) in sorted(server.items(), key=order):
        times = f" {TIMES}{calls:g}" if calls != 1 else ""
        parts.append(f"{name}{times} {usec:.1f}")
    return " · ".join(parts)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "?"


def _trips(trips: dict[str, int]) -> str:
    return ", ".join(f"{trips.get(s, 0)} ({s})" for s in SCENARIOS)


def _load_section(results: dict[str, Any]) -> list[str]:
    load = results["load"]
    params = load["params"]
    lines = [
        "## Under load",
        "",
        f"The example project (`example_project/`) under a real WSGI server on "
        f"loopback ({params['load_workers']} workers {TIMES} {params['load_threads']} "
        f"threads for gunicorn), {params['load_clients']} concurrent clients, "
        f"each a visitor with its own session on a keep-alive connection, "
        f"loading the home page (which updates the session) at most "
        f"{params['load_requests']} times in all within "
        f"{params['load_seconds']:g} s. Lost updates: visits answered that the "
        "client's counter in the session does not show.",
        "",
    ]
    rows = []
    for run in load["runs"]:
        if "failed" in run:
            rows.append(
                [_label(run["engine"]), run["server"], "failed", "", "", "", "", ""]
            )
            continue
        rows.append(
            [
                _label(run["engine"]),
                run["server"],
                str(run["requests"]),
                str(run["errors"]),
                str(run["lost_updates"]),
                f"{run['requests_per_second']:.0f}",
                _us(run["p50_ms"]),
                _us(run["p99_ms"]),
            ]
        )
    lines += _table(
        [
            "engine",
            "server",
            "requests",
            "errors",
            "lost updates",
            "req/s",
            "p50 ms",
            "p99 ms",
        ],
        rows,
    )
    return lines


def quiet_machine(results: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether the latency samples were taken on a quiet machine, and why.

    Judged on the 1-minute load average: at most half the cores before the
    run, and at most that plus one (the benchmark's own worker, one at a time
    busy) after each round of samples. The load after the whole run is shown
    but not judged: the load test's servers and clients raise it on purpose.
    ``None`` when the run did not record the load during its samples.
    """
    run = results["run"]
    cores = run["machine"]["cpus"] or 1
    before_limit, during_limit = cores / 2, cores / 2 + 1
    before = run["load_average_before"][0]
    during = results.get("latency", {}).get("load_averages")
    after = run.get("load_average_after", [None])[0]
    said = f"1-minute load average {before:g} before the run"
    if during:
        said += f", {max(during):g} at most during the latency samples"
    if after is not None:
        said += f", {after:g} after the load test"
    limits = (
        f"a quiet machine ({cores} cores) stays at or below {before_limit:g} "
        f"before the run and {during_limit:g} during the samples"
    )
    if before > before_limit or (during and max(during) > during_limit):
        return False, f"{said}, where {limits}"
    if not during:
        return None, f"{said}; the load during the samples was not recorded"
    return True, f"{said}; {limits}"


def _machine_lines(results: dict[str, Any]) -> list[str]:
    quiet, why = quiet_machine(results)
    if quiet:
        return [f"A quiet machine: {why}."]
    if quiet is None:
        return [
            f"> **Not shown to be a quiet machine.** {why[0].upper()}{why[1:]}: "
            "another program may have shared the cores. Run it again before "
            "publishing these figures."
        ]
    return [
        f"> **A busy machine: do not publish these figures.** "
        f"{why[0].upper()}{why[1:]}. Other programs shared the cores, which "
        "spreads the samples and moves the ratios."
    ]


def asgi_ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """How many times our set-up beats each other one, in req/s and CPU/request."""
    runs = {run["setup"]: run for run in results["runs"] if "failed" not in run}
    ours = runs.get("prologue")
    if not ours:
        return {}
    return {
        name: {
            "requests_per_second": round(
                ours["requests_per_second"] / run["requests_per_second"], 2
            ),
            "cpu_per_request": round(
                run["cpu_us_per_request"] / ours["cpu_us_per_request"], 2
            ),
        }
        for name, run in runs.items()
        if name != "prologue"
        and run["requests_per_second"]
        and ours["cpu_us_per_request"]
    }


def asgi_section(results: dict[str, Any]) -> list[str]:
    """The ASGI section of ``results.md`` (``bench/asgi.py``'s results), as lines."""
    params = results["params"]
    lines = [
        "## Async end to end, under ASGI",
        "",
        f"The same async view (it adds one to a counter in the session) under "
        f"{results['server']} on loopback, one worker, {params['clients']} "
        f"concurrent clients on keep-alive connections, at most "
        f"{params['requests']} requests per set-up within {params['seconds']:g} "
        "s, the set-ups taking turns. CPU is the server process's (user + "
        "system) per request; hops are `sync_to_async` calls, threads the "
        "threads it started (`bench/thread_hops.py`).",
        "",
        "| set-up | requests | errors | lost updates | req/s | p50 ms | p99 ms "
        "| CPU µs/request | hops/request | threads/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["runs"]:
        if "failed" in run:
            lines.append(f"| {run['setup']} | failed | | | | | | | | |")
            continue
        lines.append(
            f"| {run['label']} | {run['requests']} | {run['errors']} "
            f"| {run['lost_updates']} | {run['requests_per_second']:.0f} "
            f"| {run['p50_ms']} | {run['p99_ms']} "
            f"| {run['cpu_us_per_request']:.0f} | {run['hops_per_request']:g} "
            f"| {run['threads_per_request']:g} |"
        )
    lines += ["", "Thread hops per request, by the function run in the thread:", ""]
    for run in results["runs"]:
        if "failed" not in run:
            hops = ", ".join(
                f"`{name}` {count:g}" for name, count in run["hops_by_function"].items()
            )
            lines.append(f"- {run['label']}: {hops or 'none'}")
    labels = {run["setup"]: run["label"] for run in results["runs"]}
    for name, ratio in asgi_ratios(results).items():
        lines += [
            "",
            f"Ours against {labels[name]}: "
            f"{ratio['requests_per_second']:g}x its requests per second; it "
            f"spends {ratio['cpu_per_request']:g}x our CPU per request.",
        ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    run = results["run"]
    machine = run["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"`{run['command']}` on {run['date']}, engines at "
        f"`{run.get('commit', 'unknown')}`: {machine['cpus']} cores "
        f"({machine['cpu_model'] or 'unknown CPU'}), Python {machine['python']}, "
        f"{machine['redis_server']} on loopback, {run.get('seconds', '?')} s.",
        "",
        *_machine_lines(results),
    ]
    versions = next(
        (
            r.get("versions")
            for r in results.get("latency", {}).get("engines", {}).values()
        ),
        None,
    )
    if versions:
        lines += [
            "",
            "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        ]
    if "latency" in results:
        lines += [""]
        lines += ["![Microseconds per request](results.png)", ""]
        lines += ["## Targets", ""]
        lines += _table(
            ["target", "measured", ""], [target.row() for target in targets(results)]
        )
        lines += [""]
        lines += _latency_sections(results)
    if "load" in results:
        lines += [""]
        lines += _load_section(results)
    if "asgi" in results:
        lines += [""]
        lines += asgi_section(results["asgi"])
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> bool:
    """Write the bar chart of the latency results; ``False`` without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = results.get("latency")
    if not latency:
        return False
    panels = [
        ("Redis engines", ["redis", "floor"]),
        ("Cookie and in-process engines", ["cookie", "memory"]),
    ]
    ours_colors = ["#c0392b", "#e67e22", "#7d3c98", "#1e8449"]
    peer_colors = ["#5d6d7e", "#85929e", "#aeb6bf", "#2e4053"]
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.6), constrained_layout=True)
    for axis, (title, families) in zip(axes, panels, strict=True):
        names = [
            name
            for family in families
            for name in latency["engines"]
            if BY_NAME[name].family == family
        ]
        if not names:
            axis.set_visible(False)
            continue
        width = 0.8 / len(names)
        ours_i = peers_i = 0
        for index, name in enumerate(names):
            engine = BY_NAME[name]
            if engine.family == "floor":
                color, hatch = "#ffffff", "//"
            elif engine.ours:
                color, hatch = ours_colors[ours_i % 4], ""
                ours_i += 1
            else:
                color, hatch = peer_colors[peers_i % 4], ""
                peers_i += 1
            values = [median(latency, name, s) or 0.0 for s in SCENARIOS]
            positions = [
                i + (index - (len(names) - 1) / 2) * width
                for i in range(len(SCENARIOS))
            ]
            axis.bar(
                positions,
                values,
                width,
                label=engine.label,
                color=color,
                edgecolor="#1b2631",
                hatch=hatch,
                linewidth=0.6,
            )
        axis.set_xticks(range(len(SCENARIOS)), SCENARIOS)
        axis.set_ylabel("µs per request (median; lower is better)")
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
        axis.legend(
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=2,
            frameon=False,
        )
    figure.suptitle(
        f"Django request cycle per session engine: "
        f"{results['run']['machine']['cpus']} cores, {results['run']['date']}",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
