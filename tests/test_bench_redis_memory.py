"""``bench/redis_memory.py`` on the suite's server: every engine runs, and the
memory targets hold there (``MEMORY USAGE`` is exact, so they are asserted;
CPU is not: the machine is shared)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import redis_memory

pytestmark = pytest.mark.redis

SESSIONS = 4


@pytest.fixture(scope="module")
def measured(redis_url: str) -> dict[str, Any]:
    # The peers that are installed: all of them with the bench extra.
    return {
        engine: redis_memory.measure_in_worker(engine, redis_url, SESSIONS, 3, 1)
        for engine in filter(redis_memory.installed, redis_memory.ENGINES)
    }


def bytes_of(measured: dict[str, Any], engine: str, profile: str) -> int:
    return int(measured[engine]["memory"][profile]["bytes"])


def best_peer(measured: dict[str, Any], profile: str) -> int:
    peers = [p for p in redis_memory.PEERS if p in measured]
    return min(bytes_of(measured, p, profile) for p in peers)


def test_every_engine_leaves_its_keys(measured: dict[str, Any]) -> None:
    for engine, result in measured.items():
        for profile, figures in result["memory"].items():
            indexed = engine == "ours" and profile != "csrf"
            assert figures["keys"] == SESSIONS * (2 if indexed else 1), (
                engine,
                profile,
            )
        assert set(result["cpu"]) == set(redis_memory.OPERATIONS)


def test_without_the_index_no_peer_takes_less_memory(
    measured: dict[str, Any],
) -> None:
    for profile in redis_memory.PROFILES:
        assert bytes_of(measured, "ours-no-index", profile) <= best_peer(
            measured, profile
        ), profile


def test_with_the_index_a_user_with_one_session_costs_at_most_150_bytes_more(
    measured: dict[str, Any],
) -> None:
    for profile in redis_memory.PROFILES:
        limit = best_peer(measured, profile) + 150
        assert bytes_of(measured, "ours", profile) <= limit, profile


def test_script_time_counts_the_commands_it_runs_once() -> None:
    commands = {
        "evalsha": {"calls": 1, "usec_per_call": 10.0},
        "get": {"calls": 2, "usec_per_call": 1.0},  # one inside the script
        "set": {"calls": 1, "usec_per_call": 2.0},  # inside the script
    }
    assert redis_memory.top_level_usec(commands, loads=True) == 11.0
    assert redis_memory.top_level_usec(commands, loads=False) == 10.0
    plain = {
        "get": {"calls": 1, "usec_per_call": 1.0},
        "set": {"calls": 2, "usec_per_call": 2.0},
    }
    assert redis_memory.top_level_usec(plain, loads=True) == 5.0
