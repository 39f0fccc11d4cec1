"""What the local stack spends per uploaded file: CPU seconds, HTTP requests, memory.

    .venv/bin/python bench/stack_cost.py                       # 200 files of 100 KiB
    .venv/bin/python bench/stack_cost.py -n 1000 --size 20480
    .venv/bin/python bench/stack_cost.py --memory-cycles 5     # + upload/delete 1,000 x 5

It starts a local stack of its own (the code that ``imgup`` imports, so
``PYTHONPATH=<other checkout>`` measures another version), wrapped in a counter of the
requests that reach the stack's WSGI application: over HTTP, and (where the stack has them)
in-process. Then, in a temporary IMGUP_CONFIG_DIR with fake credentials:

1. ``imgup deploy --local`` (it finds the running stack and deploys onto it);
2. uploads ``--warm-up`` files (10), so that what every stack does once (loading botocore
   and moto service models, creating the handlers' clients) is not counted per file;
3. writes N PNGs of ``--size`` bytes whose bytes all differ;
4. reads the CPU time of the stack and its handlers' process (``/proc``: user + system)
   and the counts, runs ``imgup upload <files> --json`` (its defaults), waits until the
   stack is idle (S3 events are delivered after the PUT has been answered), and reads them
   again;
5. with ``--memory-cycles C``: C times, uploads ``--cycle-files`` files and deletes them all
   (``imgup delete``), and reads the stack's RSS after each cycle, and how many object
   versions and delete markers the image bucket still holds under ``images/`` (the bucket
   is versioned, as on AWS, where a lifecycle rule expires them after 7 days; with
   ``--purge-versions`` the script deletes them, to show the stack's own memory apart);
6. stops the stack.

It prints a JSON summary on stdout (per file: ``cpu_ms``, ``http_requests``,
``in_process_requests``) and progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.request import urlopen

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.upload import tree_cpu_seconds, tree_memory_kib  # noqa: E402
from tests.isolation import isolated_env  # noqa: E402
from tests.samples import png_bytes  # noqa: E402

IMGUP = str(Path(sys.executable).with_name("imgup"))
COUNTS_PATH = "/_bench/counts"

# Runs in the stack's process: count what reaches the application, then serve as usual.
LAUNCHER = """
import json, sys, threading
from imgup.local import server

counts = {"http": 0, "inProcess": 0}
lock = threading.Lock()
serve_request = server.LocalStackApp.__call__

def counted(self, environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == COUNTS_PATH:
        body = json.dumps(counts).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path != server.HEALTH_PATH:
        with lock:
            counts["inProcess" if environ.get("imgup.in_process") else "http"] += 1
    return serve_request(self, environ, start_response)

server.LocalStackApp.__call__ = counted
server.main(["--state-dir", sys.argv[1]])
""".replace("COUNTS_PATH", repr(COUNTS_PATH))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_images(directory: Path, n: int, size: int, stem: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    base = png_bytes(max(0, size - 80))
    paths = []
    for serial in range(n):
        path = directory / f"{stem}-{serial:05d}.png"
        path.write_bytes(base + serial.to_bytes(4, "big"))  # bytes differ per file
        paths.append(path)
    return paths


class Stack:
    """The stack's process, started by this script with the request counter."""

    def __init__(self, config_dir: Path) -> None:
        self.state_dir = config_dir / "local"
        self.state_dir.mkdir(parents=True)
        log = open(self.state_dir / "bench-stack.out", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", LAUNCHER, str(self.state_dir)],
            cwd=self.state_dir,
            env=isolated_env(config_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                state = json.loads((self.state_dir / "local.json").read_text())
                self.endpoint = state["endpointUrl"]
                urlopen(self.endpoint + "/_imgup/health", timeout=2).read()
                return
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        raise RuntimeError(f"the stack did not start; see {self.state_dir}")

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def rss_mib(self) -> float:
        return tree_memory_kib(self.process.pid)["VmRSS"] / 1024

    def counts(self) -> dict[str, int]:
        with urlopen(self.endpoint + COUNTS_PATH, timeout=10) as answer:
            return json.loads(answer.read())

    def wait_idle(self, quiet: float = 1.0, limit: float = 120.0) -> None:
        """Until the stack used no CPU for ``quiet`` seconds (events run after the PUTs)."""
        deadline = time.monotonic() + limit
        last = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.cpu_seconds()
            if now - last < 0.02:
                return
            last = now

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def imgup(config_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [IMGUP, *args], input=stdin, capture_output=True, text=True, env=isolated_env(config_dir), check=False
    )


def upload(config_dir: Path, paths: list[Path]) -> tuple[float, list[dict[str, Any]]]:
    started = time.monotonic()
    done = imgup(config_dir, "upload", "-", "--json", stdin="\n".join(str(p) for p in paths))
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"imgup upload exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, results(done.stdout)


def results(stdout: str) -> list[dict[str, Any]]:
    """The upload's results: a JSON array (``--json`` today) or JSON Lines (``--json`` before)."""
    try:
        parsed = json.loads(stdout)
    except ValueError:
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="imgup-stack-cost-") as tmp:
        config_dir = Path(tmp) / "config"
        say("starting the local stack")
        stack = Stack(config_dir)
        try:
            deployed = imgup(config_dir, "deploy", "--local")
            if deployed.returncode != 0:
                raise RuntimeError(f"imgup deploy --local exited {deployed.returncode}: {deployed.stderr}")
            files = write_images(Path(tmp) / "files", args.files, args.size, "cost")
            if args.warm_up:
                upload(config_dir, write_images(Path(tmp) / "warm", args.warm_up, args.size, "warm"))
            stack.wait_idle()
            cpu, counts, rss = stack.cpu_seconds(), stack.counts(), stack.rss_mib()
            say(f"uploading {args.files} files of {args.size} bytes")
            seconds, lines = upload(config_dir, files)
            stack.wait_idle()
            cpu_used = stack.cpu_seconds() - cpu
            after = stack.counts()
            summary: dict[str, Any] = {
                "files": args.files,
                "size": args.size,
                "warm_up_files": args.warm_up,
                "uploaded": len(lines),
                "upload_s": round(seconds, 2),
                "files_per_s": round(args.files / seconds, 1),
                "stack": {
                    "cpu_s": round(cpu_used, 2),
                    "rss_mib_before": round(rss, 1),
                    "rss_mib_after": round(stack.rss_mib(), 1),
                },
                "per_file": {
                    "cpu_ms": round(1000 * cpu_used / args.files, 1),
                    "http_requests": round((after["http"] - counts["http"]) / args.files, 2),
                    "in_process_requests": round((after["inProcess"] - counts["inProcess"]) / args.files, 2),
                },
            }
            if args.memory_cycles:
                summary["memory_cycles"] = cycles(args, stack, config_dir, Path(tmp))
            return summary
        finally:
            stack.stop()


def cycles(args: argparse.Namespace, stack: Stack, config_dir: Path, tmp: Path) -> list[dict[str, Any]]:
    files = write_images(tmp / "cycle", args.cycle_files, args.cycle_size, "cycle")
    bucket = json.loads(imgup(config_dir, "status", "--json").stdout)["bucket"]
    rows = []
    for cycle in range(1, args.memory_cycles + 1):
        stack.wait_idle()
        before = stack.rss_mib()
        _, lines = upload(config_dir, files)
        ids = [line["imageId"] for line in lines]
        for start in range(0, len(ids), 250):
            deleted = imgup(config_dir, "delete", "--yes", *ids[start : start + 250])
            if deleted.returncode == 2 and "--yes" in deleted.stderr:  # an imgup from before --yes
                deleted = imgup(config_dir, "delete", *ids[start : start + 250])
            if deleted.returncode != 0:
                raise RuntimeError(f"imgup delete exited {deleted.returncode}: {deleted.stderr[-2000:]}")
        left = leftover_versions(stack, bucket, purge=args.purge_versions)
        stack.wait_idle()
        row = {
            "cycle": cycle,
            "rss_mib_before": round(before, 1),
            "rss_mib_after": round(stack.rss_mib(), 1),
            "versions_left": left,
        }
        say(f"cycle {cycle}: {row}")
        rows.append(row)
    return rows


def leftover_versions(stack: Stack, bucket: str, *, purge: bool) -> int:
    """Object versions and delete markers under images/ (deleted when ``purge``)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(s3={"addressing_style": "path"}),
    )
    found = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="images/")
        for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
    ]
    if purge:  # after listing: deleting while paging would move the pages
        for start in range(0, len(found), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": found[start : start + 1000]})
    return len(found)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=100 * 1024, help="bytes per file (default 100 KiB)")
    parser.add_argument("--memory-cycles", type=int, default=0)
    parser.add_argument("--cycle-files", type=int, default=1000)
    parser.add_argument("--cycle-size", type=int, default=20 * 1024)
    parser.add_argument("--purge-versions", action="store_true")
    parser.add_argument("--warm-up", type=int, default=10, help="files uploaded before measuring")
    print(json.dumps(measure(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
