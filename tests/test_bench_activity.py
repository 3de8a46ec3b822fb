"""``python -m bench.activity`` end to end, tiny: it runs, writes its files,
and recording costs Redis bytes. No timing is asserted (a shared machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.redis
def test_the_bench_runs_and_recording_costs_bytes(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.activity",
            "--sessions",
            "5",
            "--requests",
            "5",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    results = json.loads((tmp_path / "activity.json").read_text())
    # MEMORY USAGE is exact: the record (a 70-character user agent, an IPv4
    # address, two times) adds to each session, and not without bound.
    assert 0 < results["bytes"]["on"] - results["bytes"]["off"] <= 256
    assert set(results["usec_per_request"]) == {
        "off",
        "on, within the interval",
        "on, each after the interval",
    }
    assert "bytes per session in Redis" in (tmp_path / "activity.md").read_text()
