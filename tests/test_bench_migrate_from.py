"""``python -m bench.migrate_from`` end to end, tiny: it runs, writes its
files, and its round trips (counted by the servers, exact) show what the
setting costs. No timing is asserted (a shared machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.redis
def test_our_cookie_pays_nothing_and_a_miss_one_lookup_in_the_previous_store(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.migrate_from",
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
    trips = json.loads((tmp_path / "migrate_from.json").read_text())["round_trips"]
    assert trips["our cookie, setting off"] == {"ours": 1, "previous": 0}
    assert trips["our cookie, setting on"] == {"ours": 1, "previous": 0}
    assert trips["unknown cookie, setting off"] == {"ours": 1, "previous": 0}
    # One lookup in the previous store, and one of the move's marker in ours.
    assert trips["unknown cookie, setting on"] == {"ours": 2, "previous": 1}
    # Ours: the lookup, the claim, the creation; previous: the lookup, the delete.
    assert trips["a move, setting on"] == {"ours": 3, "previous": 2}
    assert "round trips to ours" in (tmp_path / "migrate_from.md").read_text()
