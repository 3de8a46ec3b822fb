"""The benchmark runs: ``python -m bench --quick`` end to end, on a real Redis.

No timing is asserted: the counts are tiny and the machine is shared. What is
asserted is that every engine of the registry ran (or is reported as not
installed), that the round trips are counted right (the floor makes a known
number), and that the load test lost nothing.
"""

from __future__ import annotations

import ast
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import asgi, report
from bench.engines import ENGINES, SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--redis-url",
            redis_url,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out


@pytest.mark.redis
def test_every_engine_runs_or_is_reported_missing(
    quick_run: tuple[dict[str, Any], Path],
) -> None:
    results, _ = quick_run
    latency = results["latency"]
    assert latency["failed"] == {}
    for engine in ENGINES:
        if engine.missing():
            assert latency["missing"][engine.name] == engine.missing()
            continue
        ran = latency["engines"][engine.name]
        for scenario in SCENARIOS:
            assert ran["scenarios"][scenario]["us_median"] > 0, (engine.name, scenario)
        if not engine.module:  # the bare floor has no store
            assert ran["store"] is None
        else:
            assert ran["store"]["save"] > 0, engine.name
            assert ran["store"]["load"] > 0, engine.name


@pytest.mark.redis
def test_round_trips_are_counted_on_the_server(
    quick_run: tuple[dict[str, Any], Path],
) -> None:
    latency = quick_run[0]["latency"]
    engines = latency["engines"]
    # The floor makes exactly the round trips it is told to.
    floor = engines["floor"]["scenarios"]
    for scenario in SCENARIOS:
        assert floor[scenario]["round_trips"] == latency["floor_trips"].get(scenario, 0)
    # ... and the server lists its commands: a GET to read, a SET to write.
    assert list(floor["read"]["server"]) == ["get"]
    assert floor["read"]["server"]["get"][0] == 1
    assert floor["create"]["server"]["set"][0] == latency["floor_trips"]["create"]
    assert floor["untouched"]["server"] == {}
    for name, result in engines.items():
        trips = {s: result["scenarios"][s]["round_trips"] for s in SCENARIOS}
        if any(engine.name == name and engine.uses_redis for engine in ENGINES):
            # Every Redis engine reads a session in one GET-like command,
            # and leaves Redis alone when the session is not touched.
            assert trips["read"] == 1, name
            assert trips["untouched"] == 0, name
            assert result["redis_bytes"] > 0, name
        else:
            assert set(trips.values()) == {None}, name
    if "django-redis-sessions" in engines:
        # EXISTS (Django's key generation), EXISTS (its must_create), SETEX.
        assert engines["django-redis-sessions"]["scenarios"]["create"]["commands"] == 3


@pytest.mark.redis
def test_cookie_sizes(quick_run: tuple[dict[str, Any], Path]) -> None:
    engines = quick_run[0]["latency"]["engines"]
    for name, result in engines.items():
        engine = next(e for e in ENGINES if e.name == name)
        if engine.family in ("redis", "memory"):
            assert result["cookie_bytes"] == 32, name  # the session key
        elif engine.family == "cookie":
            assert result["cookie_bytes"] > 200, name  # the whole session


@pytest.mark.redis
def test_the_load_test_loses_nothing(quick_run: tuple[dict[str, Any], Path]) -> None:
    results = quick_run[0]
    params = results["load"]["params"]
    runs = {run["engine"]: run for run in results["load"]["runs"]}
    redis_engines = [e.name for e in ENGINES if e.family == "redis" and not e.missing()]
    assert sorted(runs) == sorted(redis_engines)
    for name, run in runs.items():
        assert "failed" not in run, run
        assert run["errors"] == 0, run
        assert run["lost_updates"] == 0, name
        assert run["counters_unread"] == 0, name
        assert run["requests"] == params["load_requests"], name


@pytest.mark.redis
def test_the_asgi_setups_lose_nothing_and_ours_hops_only_for_django(
    quick_run: tuple[dict[str, Any], Path],
) -> None:
    results = quick_run[0]["asgi"]
    runs = {run["setup"]: run for run in results["runs"]}
    assert sorted(runs) == sorted(setup.name for setup in asgi.SETUPS)
    session_hops = {
        "django.contrib.sessions.middleware.SessionMiddleware.process_request",
        "django.contrib.sessions.middleware.SessionMiddleware.process_response",
    }
    for name, run in runs.items():
        assert "failed" not in run, run
        assert run["errors"] == 0, run
        assert run["lost_updates"] == 0, name
        assert run["counters_unread"] == 0, name
        assert run["requests"] == results["params"]["requests"], name
        assert run["cpu_us_per_request"] > 0, name
        # Django's middleware hops twice a request; ours never.
        hops = session_hops & set(run["hops_by_function"])
        assert hops == (set() if name == "prologue" else session_hops), name
    report_text = (quick_run[1] / "results.md").read_text()
    assert "## Async end to end, under ASGI" in report_text


@pytest.mark.redis
def test_report_and_chart_are_written(quick_run: tuple[dict[str, Any], Path]) -> None:
    results, out = quick_run
    text = (out / "results.md").read_text()
    assert "## Targets" in text
    assert "## Under load" in text
    for name in results["latency"]["engines"]:
        label = next(e.label for e in ENGINES if e.name == name)
        assert label in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (out / "results.png").exists()
    else:
        assert (out / "results.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def _latency(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Latency results of made-up samples: engine -> scenario -> µs samples."""
    return {
        "latency": {
            "engines": {
                name: {
                    "scenarios": {
                        s: {
                            "us": us,
                            "us_median": statistics.median(us),
                            "round_trips": None,
                        }
                        for s, us in scenarios.items()
                    }
                }
                for name, scenarios in samples.items()
            }
        }
    }


def _speed_targets(results: dict[str, Any]) -> dict[str, report.Target]:
    return {
        target.scenario: target
        for target in report.targets(results)
        if target.engine == "prologue-redis" and target.kind == "speed"
    }


def _verdicts(results: dict[str, Any]) -> dict[str, str]:
    return {s: target.verdict for s, target in _speed_targets(results).items()}


def _twelve(*values: float) -> list[float]:
    """Twelve samples: the values given, the last one repeated."""
    return [*values, *[values[-1]] * (12 - len(values))]


def test_targets_compare_with_the_fastest_peer() -> None:
    ours = _twelve(100.0)
    results = _latency(
        {
            "prologue-redis": {"create": ours, "modify": ours, "read": ours},
            "django-redis-sessions": {
                "create": _twelve(300.0),
                "modify": _twelve(115.0),
                "read": _twelve(90.0),
            },
            "django-cache-redis": {
                "create": _twelve(125.0),
                "modify": _twelve(150.0),
                "read": _twelve(99.0),
            },
        }
    )
    # 125/100 misses 1.3x, 115/100 misses 1.2x, and 90 is faster than 100.
    assert _verdicts(results) == {
        "create": "missed",
        "modify": "missed",
        "read": "missed",
    }
    for scenario in results["latency"]["engines"]["prologue-redis"]["scenarios"]:
        results["latency"]["engines"]["prologue-redis"]["scenarios"][scenario]["us"] = (
            _twelve(90.0)
        )
    assert _verdicts(results) == {"create": "met", "modify": "met", "read": "met"}


def test_a_ratio_whose_interval_straddles_the_target_is_not_settled() -> None:
    # The published run's cookie create: samples in a fast and a slow group.
    # The medians (344 against 289 µs) make ours slower, yet ours was faster
    # in 10 of 12 pairs: neither "met" nor "missed" may stand beside that.
    ours = [215, 355, 214, 367, 225, 227, 390, 390, 216, 334, 392, 363]
    peer = [245, 377, 225, 402, 249, 241, 423, 328, 231, 244, 388, 394]
    results = _latency(
        {"prologue-signed": {"create": ours}, "django-signed": {"create": peer}}
    )
    (target,) = (
        t
        for t in report.targets(results)
        if t.engine == "prologue-signed"
        and t.kind == "speed"
        and t.scenario == "create"
    )
    assert target.verdict == report.NOT_SETTLED
    assert target.measured == (
        "1.07\N{MULTIPLICATION SIGN} (95% CI 0.99\N{EN DASH}1.10, 12 pairs) "
        "over Django signed_cookies"
    )


def test_the_interval_of_the_median_is_distribution_free() -> None:
    values = [float(v) for v in range(1, 13)]
    # 12 values: P(at most 2 of 12 below the median) = 79/4096 < 2.5%.
    assert report.median_interval(values) == (3.0, 10.0)
    assert report.median_interval(values[:6]) == (1.0, 6.0)
    assert report.median_interval(values[:5]) is None
    paired = report.PairedRatio.of([1.0] * 5)
    assert paired is not None
    assert paired.verdict(1.0) == report.NOT_SETTLED  # too few pairs to judge


def test_the_floor_target_is_judged_on_its_interval() -> None:
    floor = _twelve(100.0)
    for ours, verdict in ((_twelve(120.0), "met"), (_twelve(140.0), "missed")):
        results = _latency({"prologue-redis": {"read": ours}, "floor": {"read": floor}})
        (target,) = (
            t
            for t in report.targets(results)
            if t.kind == "floor" and t.scenario == "read"
        )
        assert target.verdict == verdict


def test_an_engine_missing_from_a_run_is_not_judged() -> None:
    verdicts = {
        (target.engine, target.kind, target.scenario): target.verdict
        for target in report.targets(_latency({"prologue-memory": {"read": [5.0]}}))
    }
    assert verdicts[("prologue-memory", "speed", "read")] == "not measured"
    assert verdicts[("prologue-redis", "round trips", "create")] == "not measured"
    assert verdicts[("prologue-signed", "cookie", "")] == "not measured"


def _run(before: float, during: list[float] | None, cpus: int = 2) -> dict[str, Any]:
    results: dict[str, Any] = {
        "run": {
            "machine": {"cpus": cpus},
            "load_average_before": [before, 0.0, 0.0],
            "load_average_after": [3.5, 0.0, 0.0],
        }
    }
    if during is not None:
        results["latency"] = {"load_averages": during}
    return results


def test_a_run_on_a_busy_machine_is_flagged() -> None:
    # 2 cores: at most 1 before the run, 2 during it (our own worker is one).
    assert report.quiet_machine(_run(0.4, [1.2, 1.9]))[0] is True
    assert report.quiet_machine(_run(1.3, [1.2, 1.4]))[0] is False
    assert report.quiet_machine(_run(0.4, [1.2, 2.6]))[0] is False
    assert report.quiet_machine(_run(0.4, None))[0] is None
    # The load after the load test is shown, not judged.
    quiet, why = report.quiet_machine(_run(0.4, [1.1]))
    assert quiet is True
    assert "3.5 after the load test" in why


def test_the_report_says_so_at_its_top() -> None:
    committed = json.loads((ROOT / "bench" / "results.json").read_text())
    busy = {**committed, "run": {**committed["run"], "load_average_before": [1.5]}}
    head = report.markdown(busy).split("## Targets")[0]
    assert "> **A busy machine: do not publish these figures.**" in head
    committed["latency"]["load_averages"] = [1.1, 1.2]
    committed["run"]["load_average_before"] = [0.3]
    head = report.markdown(committed).split("## Targets")[0]
    assert "A quiet machine: 1-minute load average 0.3 before the run" in head
    assert "do not publish" not in head


def test_the_committed_report_is_the_one_its_results_make(tmp_path: Path) -> None:
    """bench/results.md is what ``python -m bench --report`` writes from
    bench/results.json, so the figures and the verdicts come from one place."""
    (tmp_path / "results.json").write_text(
        (ROOT / "bench" / "results.json").read_text()
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--report", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "results.md").read_text()
    assert written == (ROOT / "bench" / "results.md").read_text()
    for target in report.targets(json.loads((tmp_path / "results.json").read_text())):
        if target.kind in ("speed", "floor"):
            assert "µs" not in target.measured  # only the statistic judged


def test_bench_modules_import_no_cycle() -> None:
    """Each bench module imports others only downwards: no import cycle."""
    bench_dir = Path(__file__).resolve().parent.parent / "bench"
    graph: dict[str, set[str]] = {}
    for path in bench_dir.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "bench":
                    imported |= {alias.name for alias in node.names}
                elif node.module.startswith("bench."):
                    imported.add(node.module.split(".")[1])
        graph[path.stem] = imported & {p.stem for p in bench_dir.glob("*.py")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for other in graph[name]:
            visit(other, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
