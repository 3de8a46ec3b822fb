"""``bench/per_user.py`` on the suite's server, with few sessions: every
phase runs, paged and unpaged listing make the calls they should, listing
finds every session and revoking ends all but one (the run asserts both).
Times are not asserted: the machine is shared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bench.small_runs import ROOT

pytestmark = pytest.mark.redis


def test_every_phase_runs_and_the_server_is_left_as_it_was(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    slowlog = redis_client.config_get("slowlog-*")
    run = [sys.executable, "-m", "bench.per_user", "--sessions", "150"]
    subprocess.run(
        [*run, "--rounds", "1", "--redis-url", redis_url, "--out", str(tmp_path)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    results = json.loads((tmp_path / "per_user.json").read_text())
    assert results["sessions"] == 150
    assert list(results["phases"]) == [
        "idle",
        "list, headers",
        "list, values",
        "list, one script",
        "revoke",
    ]
    # The prober runs throughout: a second of nothing else sees its GETs.
    assert results["phases"]["idle"]["gets"] > 0
    # Every page of 100 is one script call: 2 for 150 sessions.
    assert results["phases"]["list, headers"]["scripts"] == 2
    assert results["phases"]["list, one script"]["scripts"] == 1
    assert results["phases"]["revoke"]["scripts"] == 2
    assert "| list, one script |" in (tmp_path / "per_user.md").read_text()
    assert redis_client.config_get("slowlog-*") == slowlog
