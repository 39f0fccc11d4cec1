"""The upload display: bars when they are shown, and nothing but the outcomes when they are not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from pathlib import Path
from imgup.display import UploadDisplay
from imgup.uploads import Finished, LocalFile, Outcome, Sent, Started, Stored

files = [LocalFile(Path(f"/x/{n}.png"), f"{n}.png", 100, "image/png", "ab" * 32) for n in range(3)]
seen = []
def on_result(local, outcome):
    seen.append((local.name, outcome))
display = UploadDisplay(files, enabled=ENABLED, on_result=on_result)
with display:
    for n, local in enumerate(files):
        display(Started(local))
        display(Sent(local, 60))
        display(Sent(local, 40))
        display(Stored(local))
        image = {"imageId": str(n)}
        outcome = Outcome(local.name, error="refused") if n == 1 else Outcome(local.name, image=image)
        display(Finished(local, outcome))
print([(name, o.error or o.image["imageId"]) for name, o in seen])
print("rich.progress" in sys.modules, display.enabled and display._files_text())
"""


def _run(enabled: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("ENABLED", str(enabled))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_a_display_that_shows_nothing_passes_each_outcome_on_and_keeps_no_bars() -> None:
    # Into a pipe or with --no-progress: no rich.progress imported, no task kept per file
    # (that bookkeeping was a sixth of the client's time per file), every outcome passed on.
    outcomes, state = _run(enabled=False)

    assert outcomes == "[('0.png', '0'), ('1.png', 'refused'), ('2.png', '2')]"
    assert state == "False False"


def test_a_display_that_shows_counts_files_done_and_failed() -> None:
    outcomes, state = _run(enabled=True)

    assert outcomes == "[('0.png', '0'), ('1.png', 'refused'), ('2.png', '2')]"
    assert state == "True 3/3 files, 1 failed"
