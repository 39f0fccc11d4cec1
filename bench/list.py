"""Listing benchmark: ``imgup list`` on galleries of 1,000, 20,000 and 100,000 images.

    .venv/bin/python bench/list.py                          # 1k, 20k, 100k (bench/README.md)
    .venv/bin/python bench/list.py --sizes 1000,20000 --rounds 3
    .venv/bin/python bench/list.py --quick                  # seconds: 200 and 1,000 images

It deploys a local stack of its own (``imgup deploy --local`` in a temporary
IMGUP_CONFIG_DIR, fake credentials) and fills its table with ready records written straight
into DynamoDB (BatchWriteItem against the stack's endpoint; listing reads no object, so none
is stored). One record in ten is ``tmp-<n>.png``, the others ``photo-<n>.jpg``; they were
uploaded one second apart. The gallery grows from one size to the next.

At each size it times, as new processes, round after round:
- ``first page``: ``imgup list`` (the newest 50, and how many more there are), into a pipe;
- ``filtered``: ``imgup list --name 'tmp*' --type png`` (the newest 50 of the one in ten);
- ``all``: ``imgup list --all --jsonl``, every image, checked: one line per record;
and, to show where the time goes, from this process: the stack's own DynamoDB Query of the
index for 51 and for 1001 records, as the API asks for a page of 50 and of 1000 (the same
ProjectionExpression), and the API's ``GET /images?limit=1000`` itself (its handler, the
emulator and HTTP around that Query).

Per run: wall time, time to the first byte on stdout, rows, rows/s, and the client's peak
memory (ru_maxrss from ``os.wait4`` in a small launcher that also reads the pipe; see
LAUNCHER). It prints a table (medians of the rounds) and how each figure grows with the
gallery on stdout, progress on stderr, writes everything as JSON (``bench/results/``, or
``--out``), and always cleans its stack up (``imgup cleanup --yes``).
Exit 0 when every run gave what it should, 1 otherwise, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.isolation import isolated_env  # noqa: E402

IMGUP = str(Path(sys.executable).with_name("imgup"))
FULL_SIZES = (1000, 20_000, 100_000)
QUICK_SIZES = (200, 1000)
WRITERS = 4  # threads writing records
TMP_EVERY = 10  # one record in ten is tmp-<n>.png
COMMANDS = {
    "first page": ["list"],
    "filtered": ["list", "--name", "tmp*", "--type", "png"],
    "all": ["list", "--all", "--jsonl"],
}


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- filling the table ------------------------------------------------------------------


def record(n: int, start: datetime) -> dict[str, dict[str, str]]:
    """The n-th ready record, as completion writes one (docs/internals.md, "Data model")."""
    image_id = str(uuid.UUID(int=n, version=4))
    tmp = n % TMP_EVERY == 0
    name = f"tmp-{n:06d}.png" if tmp else f"photo-{n:06d}.jpg"
    file_type = "image/png" if tmp else "image/jpeg"
    stamp = (start + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    digest = uuid.UUID(int=n).hex * 2
    return {
        "imageId": {"S": image_id},
        "fileName": {"S": name},
        "s3Key": {"S": f"images/{image_id}/{name}"},
        "fileType": {"S": file_type},
        "fileSize": {"N": str(20_000 + n % 5000)},
        "status": {"S": "ready"},
        "createdAt": {"S": stamp},
        "uploadedAt": {"S": stamp},
        "galleryPk": {"S": "ready"},
        "sha256": {"S": digest},
        "readySha256": {"S": digest},
        "width": {"N": "640"},
        "height": {"N": "480"},
    }


def dynamodb(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 10}))


def fill(endpoint_url: str, table: str, first: int, last: int, start: datetime) -> float:
    """Write records ``first`` to ``last - 1`` (BatchWriteItem, 25 a call, WRITERS threads);
    the seconds it took."""
    began = time.perf_counter()
    numbers = list(range(first, last))
    chunks = [numbers[i : i + 25] for i in range(0, len(numbers), 25)]
    lock = threading.Lock()

    def writer() -> None:
        client = dynamodb(endpoint_url)
        while True:
            with lock:
                if not chunks:
                    return
                chunk = chunks.pop()
            pending: dict[str, Any] = {table: [{"PutRequest": {"Item": record(n, start)}} for n in chunk]}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def query_seconds(endpoint_url: str, table: str, limit: int) -> float:
    """One Query of the ReadyByDate index for ``limit`` records, newest first, exactly as the
    API asks it (imgup.backend.storage): DynamoDB's share of a page."""
    from imgup.backend import rules, storage

    client = dynamodb(endpoint_url)
    kwargs = storage._ListQuery(rules.ListFilter(), oldest_first=False).kwargs(table)
    began = time.perf_counter()
    client.query(**kwargs, Limit=limit)
    return time.perf_counter() - began


def page_seconds(api_url: str, api_key: str) -> float:
    """One ``GET /images?limit=1000`` of the API: the handler, the emulator and HTTP."""
    import httpx

    began = time.perf_counter()
    answer = httpx.get(
        api_url + "/images", params={"limit": 1000}, headers={"x-api-key": api_key}, timeout=120
    )
    answer.raise_for_status()
    return time.perf_counter() - began


# --- one timed process ------------------------------------------------------------------

# The command is started by this small launcher, not by the benchmark: on Linux a process's
# ru_maxrss starts at the RSS of the process it was forked from (the benchmark's 60-80 MB).
# The launcher spawns it with stdout on a pipe, reads the pipe (noting when the first byte
# came, counting lines and bytes), and writes "seconds exit_code maxrss_kib first_byte_s
# lines bytes" to its first argument.
LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
read_end, write_end = os.pipe()
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
    (os.POSIX_SPAWN_DUP2, write_end, 1), (os.POSIX_SPAWN_CLOSE, read_end)])
os.close(write_end)
first, lines, size = -1.0, 0, 0
while chunk := os.read(read_end, 1 << 16):
    if first < 0:
        first = time.perf_counter() - started
    lines += chunk.count(b"\\n")
    size += len(chunk)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as handle:
    handle.write(f"{time.perf_counter() - started} {os.waitstatus_to_exitcode(status)} "
                 f"{usage.ru_maxrss} {first} {lines} {size}")
"""


@dataclass
class Run:
    command: str
    size: int
    round: int
    seconds: float
    exit_code: int
    maxrss_kib: int
    first_byte_s: float | None
    lines: int
    expected_lines: int | None
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and (self.expected_lines is None or self.lines == self.expected_lines)

    @property
    def rows_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def timed(argv: list[str], env: dict[str, str], workdir: Path, timeout: float) -> tuple[list[str], str]:
    result = workdir / "launcher.out"
    result.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *argv]
    completed = subprocess.run(
        launcher, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
    )
    return result.read_text().split(), completed.stderr.decode("utf-8", "replace")


# --- the benchmark ----------------------------------------------------------------------


@dataclass
class Bench:
    sizes: Sequence[int]
    rounds: int
    all_rounds: int
    workdir: Path
    timeout: float
    env: dict[str, str] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    queries: dict[int, dict[str, float]] = field(default_factory=dict)
    fill_s: dict[int, float] = field(default_factory=dict)

    def imgup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IMGUP, *args], env=self.env, capture_output=True, text=True, timeout=600, check=False
        )

    def run(self) -> None:
        config = self.workdir / "config"
        self.env = isolated_env(config)
        say("deploying a local stack of its own")
        deployed = self.imgup("deploy", "--local")
        if deployed.returncode != 0:
            raise SystemExit(f"deploy failed: {deployed.stderr[-2000:]}")
        status = json.loads(self.imgup("status", "--json", "--show-key").stdout)
        endpoint, table = status["endpointUrl"], status["table"]
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        filled = 0
        for size in self.sizes:
            say(f"filling the table to {size:,} ready records")
            self.fill_s[size] = fill(endpoint, table, filled, size, start)
            filled = size
            self.queries[size] = {
                f"query {limit}": statistics.median(query_seconds(endpoint, table, limit) for _ in range(3))
                for limit in (51, 1001)
            }
            self.queries[size]["api page 1000"] = statistics.median(
                page_seconds(status["apiUrl"], status["apiKey"]) for _ in range(3)
            )
            for number in range(max(self.rounds, self.all_rounds)):
                for name, args in COMMANDS.items():
                    if number >= (self.all_rounds if name == "all" else self.rounds):
                        continue
                    self.runs.append(self.one(name, args, size, number))

    def one(self, name: str, args: list[str], size: int, number: int) -> Run:
        expected = size if name == "all" else None
        fields, stderr = timed([IMGUP, *args], self.env, self.workdir, self.timeout)
        seconds, code, maxrss, first, lines, _ = fields
        run = Run(
            command=name,
            size=size,
            round=number,
            seconds=float(seconds),
            exit_code=int(code),
            maxrss_kib=int(maxrss),
            first_byte_s=None if float(first) < 0 else float(first),
            lines=int(lines),
            expected_lines=expected,
            stderr_tail=stderr[-400:],
        )
        say(
            f"{size:>7,} {name:<10} round {number + 1}: {run.seconds:7.2f} s, first row "
            f"{run.first_byte_s or 0:.2f} s, {run.lines:,} rows, {run.maxrss_kib / 1024:.0f} MiB"
            + ("" if run.ok else f"  FAILED (exit {run.exit_code}): {stderr[-300:]}")
        )
        return run

    def cleanup(self) -> None:
        if self.env:
            say("cleaning up")
            self.imgup("cleanup", "--yes")


def summarise(bench: Bench) -> list[dict[str, Any]]:
    rows = []
    for size in bench.sizes:
        for name in COMMANDS:
            runs = [r for r in bench.runs if r.size == size and r.command == name]
            if not runs:
                continue
            rows.append(
                {
                    "size": size,
                    "command": name,
                    "rounds": len(runs),
                    "seconds": statistics.median(r.seconds for r in runs),
                    "first_row_s": statistics.median(r.first_byte_s or 0 for r in runs),
                    "rows": runs[0].lines,
                    "rows_per_s": statistics.median(r.rows_per_s for r in runs),
                    "peak_mib": max(r.maxrss_kib for r in runs) / 1024,
                    "ok": all(r.ok for r in runs),
                }
            )
    return rows


def table(bench: Bench, rows: list[dict[str, Any]]) -> str:
    lines = [
        "| images | command | s | first row s | rows | rows/s | client peak MiB "
        "| Query 51 s | Query 1001 s | API page 1000 s |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        query = bench.queries.get(row["size"], {})
        lines.append(
            f"| {row['size']:,} | {row['command']} | {row['seconds']:.2f} | {row['first_row_s']:.2f} | "
            f"{row['rows']:,} | {row['rows_per_s']:,.0f} | {row['peak_mib']:.0f} | "
            f"{query.get('query 51', 0):.2f} | {query.get('query 1001', 0):.2f} | "
            f"{query.get('api page 1000', 0):.2f} |" + ("" if row["ok"] else " FAILED")
        )
    smallest = bench.sizes[0]
    lines.append("")
    lines.append(f"Growth against {smallest:,} images (ratio of medians):")
    for name in COMMANDS:
        base = next((r for r in rows if r["size"] == smallest and r["command"] == name), None)
        if base is None:
            continue
        parts = []
        for row in rows:
            if row["command"] == name and row["size"] != smallest:
                parts.append(
                    f"{row['size']:,}: time x{row['seconds'] / base['seconds']:.1f}, "
                    f"peak memory x{row['peak_mib'] / base['peak_mib']:.2f}"
                )
        lines.append(f"- {name}: " + ("; ".join(parts) or "-"))
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    import moto

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "moto": moto.__version__,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/list.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="gallery sizes, comma-separated, growing (default 1000,20000,100000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of the first page and filtered lists")
    parser.add_argument("--all-rounds", type=int, default=1, help="runs of list --all per size")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one command may take")
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 images, one round")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        sizes: Sequence[int] = QUICK_SIZES
        args.rounds = args.all_rounds = 1
    else:
        sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else FULL_SIZES
    if list(sizes) != sorted(set(sizes)):
        raise SystemExit("--sizes must grow")
    with tempfile.TemporaryDirectory(prefix="imgup-bench-list-") as tmp:
        bench = Bench(sizes, args.rounds, args.all_rounds, Path(tmp), args.timeout)
        try:
            bench.run()
        except KeyboardInterrupt:
            say("interrupted")
            return 130
        finally:
            bench.cleanup()
    rows = summarise(bench)
    print(table(bench, rows))
    out = args.out or ROOT / "bench" / "results" / f"list-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "environment": environment(),
                "command": " ".join(["bench/list.py", *(argv if argv is not None else sys.argv[1:])]),
                "fill_s": bench.fill_s,
                "queries": bench.queries,
                "summary": rows,
                "runs": [asdict(r) | {"ok": r.ok} for r in bench.runs],
            },
            indent=2,
        )
    )
    say(f"results: {out}")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
