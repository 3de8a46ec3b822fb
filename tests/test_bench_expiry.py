"""``python -m bench.expiry`` end to end, tiny: it runs, writes its files, the
idle timeout's slide writes a tenth of what saving every request does, and
the anonymous age leaves fewer sessions at the end of the day. No timing is
asserted (a shared machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.expiry import OURS, PEER

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.redis
def test_the_bench_runs_and_the_slide_writes_a_tenth(tmp_path: Path) -> None:
    arguments = ["--requests", "200", "--pace", "0.005", "--idle-timeout", "2"]
    arguments += ["--rounds", "1", "--visitors", "48", "--out", str(tmp_path)]
    subprocess.run(
        [sys.executable, "-m", "bench.expiry", *arguments],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    results = json.loads((tmp_path / "expiry.json").read_text())
    ours, peer = results["sliding"][OURS], results["sliding"][PEER]
    assert peer["writes"] >= 200
    assert ours["writes"] * 10 <= peer["writes"]
    assert ours["bytes"] * 10 <= peer["bytes"]
    day = results["anonymous_day"]
    assert day["default age"]["sessions_held"] == 48
    assert day["PROLOGUE_SESSIONS_ANONYMOUS_AGE=3600"]["sessions_held"] == 2
    assert "Redis writes" in (tmp_path / "expiry.md").read_text()
