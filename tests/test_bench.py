"""The benchmark runs: ``python -m bench --quick`` end to end, on a real Redis.

No timing is asserted: the counts are tiny and the machine is shared. What is
asserted is that every engine of the registry ran (or is reported as not
installed), that the round trips are counted right (the floor makes a known
number), and that the load test lost nothing.
"""

from __future__ import annotations

import json
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


def _latency(times: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        "latency": {
            "engines": {
                name: {
                    "scenarios": {
                        s: {"us_median": us, "round_trips": None}
                        for s, us in scenarios.items()
                    }
                }
                for name, scenarios in times.items()
            }
        }
    }


def _speed_verdicts(results: dict[str, Any]) -> dict[str, str]:
    return {
        target.scenario: target.verdict
        for target in report.targets(results)
        if target.engine == "prologue-redis" and target.kind == "speed"
    }


def test_targets_compare_with_the_fastest_peer() -> None:
    results = _latency(
        {
            "prologue-redis": {"create": 100.0, "modify": 100.0, "read": 100.0},
            "django-redis-sessions": {"create": 300.0, "modify": 130.0, "read": 90.0},
            "django-cache-redis": {"create": 190.0, "modify": 150.0, "read": 99.0},
        }
    )
    # 190/100 misses 2x, 130/100 misses 1.4x, and 90 is faster than 100.
    assert _speed_verdicts(results) == {
        "create": "missed",
        "modify": "missed",
        "read": "missed",
    }
    ours = results["latency"]["engines"]["prologue-redis"]["scenarios"]
    for scenario in ours.values():
        scenario["us_median"] = 90.0
    assert _speed_verdicts(results) == {
        "create": "met",
        "modify": "met",
        "read": "met",
    }


def test_an_engine_missing_from_a_run_is_not_judged() -> None:
    verdicts = {
        (target.engine, target.kind, target.scenario): target.verdict
        for target in report.targets(_latency({"prologue-memory": {"read": 5.0}}))
    }
    assert verdicts[("prologue-memory", "speed", "read")] == "not measured"
    assert verdicts[("prologue-redis", "round trips", "create")] == "not measured"
    assert verdicts[("prologue-signed", "cookie", "")] == "not measured"
