"""``python -m bench.side_by_side`` end to end, with tiny counts.

No timing is asserted (the machine is shared): that every pair runs every
scenario through the real request cycle, and that our signed cookie is the
size of Django's, and that each in-process store is measured holding sessions.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_pair_runs_every_scenario() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.side_by_side"),
            *("--number", "3", "--repeat", "2", "--sessions", "50"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(
        r"^  (create|read|modify)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$",
        done.stdout,
        re.MULTILINE,
    )
    assert [row[0] for row in rows] == ["create", "read", "modify"] * 2
    assert all(float(value) > 0 for row in rows for value in row[1:])
    sizes = re.search(
        r"cookie bytes: \{'prologue-signed': (\d+), 'django-signed': (\d+)\}",
        done.stdout,
    )
    assert sizes is not None, done.stdout
    assert sizes.group(1) == sizes.group(2)
    held = re.search(
        r"bytes per stored session: prologue-memory (\d+), django-cache-locmem (\d+)",
        done.stdout,
    )
    assert held is not None, done.stdout
    # A stored session holds at least its serialized data (over 300 bytes).
    assert int(held.group(1)) > 300
    assert int(held.group(2)) > 300
