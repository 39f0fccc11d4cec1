"""Load, at CI size: the benchmark's own run (bench/load.py), 60 uploads through 8 workers.

It deploys a fresh local stack, uploads with the real ``imgup upload - -j 8 --jsonl``, checks
with ``imgup doctor --json`` and ``imgup list --all --json``, and cleans up. Counts, uniqueness and
health are asserted here; timings are only measured, never asserted.
"""

from __future__ import annotations

import pytest

from bench import load

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N, WORKERS = 60, 8


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> load.LoadRun:
    return load.run(N, WORKERS, tmp_path_factory.mktemp("load"), latency=False)


def test_every_upload_succeeds_once_with_a_distinct_id(run: load.LoadRun) -> None:
    assert run.upload_code == 0, run.upload_stderr
    assert "Traceback" not in run.upload_stderr
    assert f"Uploaded {N} of {N} files." in run.upload_stderr
    ids = [line["imageId"] for line in run.uploaded]
    assert len(ids) == N and len(set(ids)) == N
    assert len({line["sha256"] for line in run.uploaded}) == N, "the generated images were not distinct"
    assert sorted(line["fileName"] for line in run.uploaded) == [f"load-{i:05d}.png" for i in range(N)]


def test_the_stack_ends_with_exactly_n_ready_records_and_n_objects_and_is_consistent(
    run: load.LoadRun,
) -> None:
    assert run.doctor["healthy"] is True and run.doctor["problems"] == []
    assert run.doctor["records"] == {"ready": N}
    assert run.doctor["objects"] == N


def test_the_gallery_lists_every_upload_exactly_once(run: load.LoadRun) -> None:
    listed = [image["imageId"] for image in run.listed]
    assert len(listed) == len(set(listed)) == N
    assert set(listed) == {line["imageId"] for line in run.uploaded}
    assert run.problems() == []


def test_the_benchmark_cleans_up_after_itself(run: load.LoadRun) -> None:
    assert run.cleanup_code == 0
    assert run.config_dir is not None
    assert not list((run.config_dir / "deployments").glob("*/deployment.json"))
    assert not (run.config_dir / "local" / "local.json").exists(), "the local stack is still running"
    assert set(run.summary()) >= {"n", "workers", "seconds", "uploads_per_s", "phases_s", "problems"}
