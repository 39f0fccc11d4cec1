"""bench/list.py at CI size (--quick: 200 and 1,000 images): it runs, every listing gives what
it should, and its stack is cleaned up. Timings are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_the_quick_listing_benchmark_lists_every_record_and_prints_a_row_per_command(tmp_path: Path) -> None:
    out = tmp_path / "list.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "list.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(row["size"], row["command"]): row for row in report["summary"]}
    assert set(rows) == {(size, name) for size in (200, 1000) for name in ("first page", "filtered", "all")}
    assert all(row["ok"] for row in rows.values())
    assert rows[(1000, "all")]["rows"] == 1000 and rows[(1000, "first page")]["rows"] == 50
    assert rows[(1000, "filtered")]["rows"] == 50  # one in ten of 1,000 is tmp-*.png
    assert "| 1,000 | all |" in result.stdout
    assert "cleaning up" in result.stderr
