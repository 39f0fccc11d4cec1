"""Load benchmark: N distinct images through W concurrent workers on a fresh local stack.

    .venv/bin/python bench/load.py                  # 500 images, 32 workers
    .venv/bin/python bench/load.py -n 60 -w 8 --no-latency

It deploys its own local stack (``imgup deploy --local`` in a temporary IMGUP_CONFIG_DIR),
writes N small PNGs whose bytes all differ, uploads them with the real command
(``imgup upload - -j W --jsonl``, paths on stdin), then checks the outcome: exit 0, N result
lines with N distinct ids, ``imgup doctor --json`` healthy with exactly N ready records and N
objects, and ``imgup list --all --json`` holding exactly the uploaded ids. With latency on (the
default) a second pass of N new files goes through the client core in-process (the same
``upload_files`` core as the command) to time each file from the start of its PUT to its
completion; the checks then expect 2N. It prints a JSON
summary on stdout, progress on stderr, exits 1 when a check fails, and always cleans up
(``imgup cleanup --yes``). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.isolation import isolated_env  # noqa: E402
from tests.samples import png_bytes  # noqa: E402

IMGUP = str(Path(sys.executable).with_name("imgup"))


def write_images(directory: Path, n: int, size: int, stem: str = "load") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for serial in range(n):
        path = directory / f"{stem}-{serial:05d}.png"
        path.write_bytes(png_bytes(size) + serial.to_bytes(4, "big"))  # bytes differ per file
        paths.append(path)
    return paths


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class LoadRun:
    n: int
    workers: int
    phases: dict[str, float] = field(default_factory=dict)
    upload_code: int | None = None
    upload_stderr: str = ""
    uploaded: list[dict[str, Any]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)
    doctor: dict[str, Any] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    in_process: bool = False  # whether the timed in-process pass ran
    config_dir: Path | None = None
    cleanup_code: int | None = None
    errors: list[str] = field(default_factory=list)  # from the in-process pass

    @property
    def expected(self) -> int:
        return self.n * (2 if self.in_process else 1)

    def problems(self) -> list[str]:
        """What went wrong, in sentences; empty when the run met every expectation."""
        found = []
        if self.upload_code != 0:
            found.append(f"imgup upload exited {self.upload_code}")
        if "Traceback" in self.upload_stderr:
            found.append("imgup upload printed a traceback")
        ids = [line.get("imageId") for line in self.uploaded]
        if len(ids) != self.n:
            found.append(f"{len(ids)} result lines for {self.n} files")
        if len(set(ids)) != len(ids):
            found.append(f"{len(ids) - len(set(ids))} duplicate image ids in the results")
        found += [f"in-process upload failed: {error}" for error in self.errors[:5]]
        if not self.doctor.get("healthy"):
            found.append(f"doctor found problems: {self.doctor.get('problems', [])[:5]}")
        ready = self.doctor.get("records", {}).get("ready")
        if ready != self.expected:
            found.append(f"{ready} ready records, expected {self.expected}")
        if self.doctor.get("objects") != self.expected:
            found.append(f"{self.doctor.get('objects')} objects, expected {self.expected}")
        listed = [image["imageId"] for image in self.listed]
        if len(listed) != len(set(listed)):
            found.append("the gallery lists an image twice")
        if len(listed) != self.expected or not set(ids) <= set(listed):
            found.append(f"the gallery lists {len(listed)} images, expected {self.expected}")
        return found

    def summary(self) -> dict[str, Any]:
        seconds = self.phases.get("upload", 0.0)
        result: dict[str, Any] = {
            "n": self.n,
            "workers": self.workers,
            "seconds": round(seconds, 2),
            "uploads_per_s": round(self.n / seconds, 1) if seconds else None,
            "phases_s": {name: round(value, 2) for name, value in self.phases.items()},
            "ready_records": self.doctor.get("records", {}).get("ready"),
            "objects": self.doctor.get("objects"),
            "listed": len(self.listed),
            "problems": self.problems(),
        }
        if self.latencies:
            in_process = self.phases.get("upload_in_process", 0.0)
            result["in_process"] = {
                "seconds": round(in_process, 2),
                "uploads_per_s": round(self.n / in_process, 1) if in_process else None,
                "latency_ms": {
                    "p50": round(1000 * percentile(self.latencies, 0.50)),
                    "p95": round(1000 * percentile(self.latencies, 0.95)),
                    "mean": round(1000 * statistics.fmean(self.latencies)),
                    "max": round(1000 * max(self.latencies)),
                },
            }
        return result


def _imgup(
    env: dict[str, str], *args: str, stdin: str = "", timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [IMGUP, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env
    )


def _timed(phases: dict[str, float], name: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        return action()
    finally:
        phases[name] = time.perf_counter() - started


def _in_process_pass(config_dir: Path, files: list[Path], workers: int) -> tuple[list[float], list[str]]:
    """Upload ``files`` with the upload core, timing each file from the start of its PUT to
    its completion (its presign is shared with a batch, so it is not in the figure)."""
    from imgup.api import ImageApi, RetryPolicy, make_http_client
    from imgup.deployments import Registry
    from imgup.uploads import Finished, Started, collect_files, upload_files

    registry = Registry(config_dir)
    [which] = registry.ids()
    deployment = registry.load(which)
    api_key = registry.api_key(which)
    latencies: list[float] = []
    started: dict[Any, float] = {}

    def timing(event: Any) -> None:
        if isinstance(event, Started):
            started[event.file] = time.perf_counter()
        elif isinstance(event, Finished) and event.file in started:
            latencies.append(time.perf_counter() - started.pop(event.file))

    good, bad = collect_files([str(f) for f in files], deployment.max_upload_bytes)
    with make_http_client(30.0) as http:
        api = ImageApi(deployment.api_url, api_key, http, RetryPolicy())
        outcomes = upload_files(good, api, concurrency=workers, on_event=timing)
    errors = [f"{o.source}: {o.error}" for o in bad + outcomes if o.error]
    return latencies, errors


def run(n: int, workers: int, workdir: Path, *, size: int = 2048, latency: bool = True) -> LoadRun:
    """Deploy, upload, check, clean up; the measurements and what was observed."""
    config_dir = workdir / "config"
    env = isolated_env(config_dir)
    result = LoadRun(n, workers, config_dir=config_dir)
    phases = result.phases

    def say(text: str) -> None:
        print(f"[load] {text}", file=sys.stderr, flush=True)

    try:
        say(f"deploying a local stack in {config_dir}")
        deployed = _timed(phases, "deploy", lambda: _imgup(env, "deploy", "--local", timeout=180))
        if deployed.returncode != 0:
            raise RuntimeError(f"imgup deploy --local failed:\n{deployed.stderr}")
        files = _timed(phases, "generate", lambda: write_images(workdir / "images", n, size))
        say(f"uploading {n} files with {workers} workers")
        stdin = "".join(f"{path}\n" for path in files)
        uploaded = _timed(
            phases, "upload", lambda: _imgup(env, "upload", "-", "-j", str(workers), "--jsonl", stdin=stdin)
        )
        result.upload_code = uploaded.returncode
        result.upload_stderr = uploaded.stderr
        result.uploaded = [json.loads(line) for line in uploaded.stdout.splitlines() if line.strip()]
        if latency:
            more = write_images(workdir / "timed", n, size, stem="timed")
            say(f"uploading {n} more in-process, timing each file")
            result.in_process = True
            result.latencies, result.errors = _timed(
                phases, "upload_in_process", lambda: _in_process_pass(config_dir, more, workers)
            )
        say("checking: imgup doctor --json, imgup list --json")
        doctor = _timed(phases, "doctor", lambda: _imgup(env, "doctor", "--json"))
        result.doctor = json.loads(doctor.stdout) if doctor.stdout.strip() else {"healthy": False}
        listed = _timed(phases, "list", lambda: _imgup(env, "list", "--all", "--json"))
        result.listed = json.loads(listed.stdout) if listed.returncode == 0 else []
    finally:
        if any((config_dir / "deployments").glob("*/deployment.json")) or (config_dir / "local").exists():
            say("cleaning up")
            cleaned = _timed(phases, "cleanup", lambda: _imgup(env, "cleanup", "--yes", timeout=180))
            result.cleanup_code = cleaned.returncode
            if cleaned.returncode not in (0, 3):
                say(f"cleanup failed ({cleaned.returncode}):\n{cleaned.stderr}")
                _imgup(env, "local", "stop", timeout=60)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500, help="images to upload (default 500)")
    parser.add_argument("-w", "--workers", type=int, default=32, help="concurrent uploads (default 32)")
    parser.add_argument("--size", type=int, default=2048, help="bytes per image (default 2048)")
    parser.add_argument(
        "--no-latency", action="store_true", help="skip the in-process pass that times each file"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imgup-load-") as workdir:
        result = run(args.n, args.workers, Path(workdir), size=args.size, latency=not args.no_latency)
    summary = result.summary()
    print(json.dumps(summary, indent=2))
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
