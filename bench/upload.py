"""Upload benchmark: ``imgup upload`` against ``aws s3 cp --recursive`` and ``rclone copy``.

    .venv/bin/python bench/upload.py                        # 4 cases, 3 rounds (bench/README.md)
    .venv/bin/python bench/upload.py --rounds 5 --cases 200x100k,1x5m
    .venv/bin/python bench/upload.py --quick                # seconds: what the CI test runs
    .venv/bin/python bench/upload.py --aws ~/.venvs/awscli/bin/aws --rclone /usr/bin/rclone

It deploys a local stack of its own (``imgup deploy --local`` in a temporary
IMGUP_CONFIG_DIR, fake credentials), writes each case's files (distinct valid PNGs), and
times, round after round, each tool as a new process on the same files: ``imgup upload -``
with its defaults (the paths on stdin), and the peers copying the directory into a bucket of
their own on the same S3 endpoint (not the image bucket, whose ObjectCreated events would
load the stack). The tools take turns, in a rotated order each round. A case with a delay
sends every tool through ``bench/latproxy.py``, which adds it to every HTTP request.

Per run it records the wall time, the client's peak memory (ru_maxrss from ``os.wait4``, in
a small launcher: see LAUNCHER), and the stack's CPU time (utime + stime of its process tree,
read from /proc before the run and after the stack has gone idle, so that work finishing
after the client, like S3 events, counts), its peak memory (VmHWM, reset before the run
through ``/proc/<pid>/clear_refs``), and the requests it served (``GET /_imgup/health`` counts, when
the stack has it; else only what the proxy counts). Then it checks the counts (every file
reported and stored, nothing else) and deletes what the run stored, so that every round
starts from the same state. It prints a table per case (medians of the rounds) on stdout,
progress on stderr, writes everything as JSON (``bench/results/``, or ``--out``), and always
cleans up its stack (``imgup cleanup --yes``).
Exit 0 when every run's counts were right, 1 otherwise, 130 when interrupted.

Peers that are missing are reported and skipped. To install them:
- aws: ``python3 -m venv ~/.venvs/awscli && ~/.venvs/awscli/bin/pip install awscli``,
  then ``--aws ~/.venvs/awscli/bin/aws``;
- rclone: ``sudo apt-get install rclone`` (Debian), then ``--rclone /usr/bin/rclone``.
  rclone 1.60 refuses to start while AWS_CA_BUNDLE is set: the benchmark unsets it for rclone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast
from urllib.error import URLError
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latproxy import LatencyProxy  # noqa: E402
from bench.load import write_images  # noqa: E402
from tests.isolation import isolated_env  # noqa: E402
from tests.samples import png_bytes  # noqa: E402

IMGUP = str(Path(sys.executable).with_name("imgup"))
KiB, MiB = 1024, 1024 * 1024
MB = 1_000_000
PEER_BUCKET = "imgup-bench-peers"
TOOLS = ("imgup", "aws", "rclone")
PEERS = ("aws", "rclone")
INSTALL = {
    "aws": "python3 -m venv ~/.venvs/awscli && ~/.venvs/awscli/bin/pip install awscli; "
    "then --aws ~/.venvs/awscli/bin/aws",
    "rclone": "sudo apt-get install rclone (Debian); then --rclone /usr/bin/rclone",
}
STATS_PATH = "/_imgup/health"
STATS_FIELDS = ("httpRequests", "apiRequests", "invocations", "storageOps")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PNG_OVERHEAD = len(png_bytes(0)) + 4  # write_images adds a 4-byte serial to png_bytes(padding)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    files: int
    size: int  # bytes per file
    delay: float = 0.0  # seconds the proxy adds to every request; 0: no proxy

    @property
    def total_bytes(self) -> int:
        return self.files * self.size


FULL = (
    Case("200x100k", "200 x 100 KiB", 200, 100 * KiB),
    Case("1000x20k", "1,000 x 20 KiB", 1000, 20 * KiB),
    Case("1x5m", "1 x 5 MiB (the limit less 1 KiB)", 1, 5 * MiB - KiB),
    Case("200x100k+30ms", "200 x 100 KiB, 30 ms added to every request (proxy)", 200, 100 * KiB, 0.030),
)
QUICK = (
    Case("8x4k", "8 x 4 KiB", 8, 4 * KiB),
    Case("8x4k+30ms", "8 x 4 KiB, 30 ms added to every request (proxy)", 8, 4 * KiB, 0.030),
)


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- the peers --------------------------------------------------------------------------


@dataclass
class Peer:
    name: str
    path: str | None = None
    version: str | None = None
    missing: str | None = None  # why it is skipped, with how to install it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_quietly(argv: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> str | None:
    """The first line of what ``argv`` prints, or None when it fails to run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def find_peer(name: str, given: str | None, env: dict[str, str]) -> Peer:
    """The peer tool, resolved and started once (``--version``), or why it cannot be used."""
    hint = f"install: {INSTALL[name]}"
    path = given or shutil.which(name)
    if path is None:
        return Peer(name, missing=f"{name} is not on PATH ({hint})")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return Peer(name, path, missing=f"{path} is not an executable file ({hint})")
    if f"{os.sep}shims{os.sep}" in path and "pyenv" in path:  # a pyenv shim: time the tool, not pyenv
        real = _run_quietly(["pyenv", "which", name])
        if real and os.access(real, os.X_OK):
            path = real
    version = _run_quietly([path, "version" if name == "rclone" else "--version"], env=env)
    if version is None:
        return Peer(name, path, missing=f"{path} did not start ({hint})")
    return Peer(name, path, version=version)


# --- the stack, seen from outside -------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 is the first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """``root`` and its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 10_000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of ``root``'s process tree (the stack and its handlers'
    process), with its reaped children."""
    ticks = 0
    for pid in process_tree(root):
        fields = _proc_stat(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == root:
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def tree_memory_kib(root: int) -> dict[str, int]:
    """VmHWM and VmRSS, summed over ``root``'s process tree, in KiB."""
    found = {"VmHWM": 0, "VmRSS": 0}
    for pid in process_tree(root):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(":")
            if name in found:
                found[name] += int(value.split()[0])
    return found


@dataclass
class Stack:
    """The local stack that the benchmark deployed: its config dir, endpoint and process."""

    config_dir: Path
    endpoint_url: str
    pid: int
    bucket: str

    @classmethod
    def read(cls, config_dir: Path) -> Stack:
        from imgup.deployments import Registry

        state = json.loads((config_dir / "local" / "local.json").read_text())
        registry = Registry(config_dir)
        [which] = registry.ids()
        return cls(config_dir, state["endpointUrl"], int(state["pid"]), registry.load(which).bucket)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def memory_kib(self) -> dict[str, int]:
        return tree_memory_kib(self.pid)

    def reset_peak_memory(self) -> bool:
        """Reset VmHWM to the current RSS (``clear_refs`` 5); False when not allowed."""
        try:
            for pid in process_tree(self.pid):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def stats(self) -> dict[str, int] | None:
        """The stack's request counters, or None when it has no stats endpoint."""
        try:
            with urlopen(self.endpoint_url + STATS_PATH, timeout=5) as answer:
                data = json.loads(answer.read())
        except (URLError, OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("requests"), dict):
            return None
        stats = {
            "httpRequests": data["requests"].get("http"),
            "apiRequests": data["requests"].get("api"),
            "invocations": data.get("invocations"),
            "storageOps": data["requests"].get("inProcess"),
        }
        if not all(isinstance(v, int) for v in stats.values()):
            return None
        return stats

    def settle(self, quiet: float = 0.5, step: float = 0.1, bound: float = 60.0) -> float:
        """Wait until the stack has used (almost) no CPU for ``quiet`` seconds (at most 2 clock
        ticks, or 5 %), at most ``bound`` seconds; the seconds waited."""
        started = time.monotonic()
        samples = [(started, self.cpu_seconds())]
        allowed = max(2 / CLOCK_TICKS, 0.05 * quiet)
        while time.monotonic() - started < bound:
            time.sleep(step)
            now, cpu = time.monotonic(), self.cpu_seconds()
            samples.append((now, cpu))
            window = [(t, c) for t, c in samples if now - t <= quiet + step / 2]
            if now - window[0][0] >= quiet - step / 2 and cpu - window[0][1] <= allowed:
                break
            samples = window
        return time.monotonic() - started


def s3_client(endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint_url, config=Config(signature_version="s3v4"))


def stored_objects(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: int(item["Size"]) for page in pages for item in page.get("Contents", [])}


def delete_objects(s3: Any, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


# --- one timed process ------------------------------------------------------------------


@dataclass
class Timed:
    seconds: float
    exit_code: int  # negative: killed by that signal
    maxrss_kib: int
    timed_out: bool = False


# The tool is started by this small launcher rather than by the benchmark itself: on Linux a
# process's ru_maxrss starts at the RSS of the process it was forked from, which would put
# the benchmark's own 60-80 MB under every figure (measured: /bin/true "peaks" at the size of
# its parent). The launcher is small (about 8 MB); it spawns the tool, times it from spawn to
# exit, and writes "seconds exit_code maxrss_kib" to its first argument.
LAUNCHER = """
import os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
try:
    pid = os.posix_spawn(argv[0], argv, os.environ)
except OSError as exc:
    print(f"cannot start {argv[0]}: {exc}", file=sys.stderr)
    code, maxrss = 127, 0
else:
    _, status, usage = os.wait4(pid, 0)
    code, maxrss = os.waitstatus_to_exitcode(status), usage.ru_maxrss
with open(out, "w") as handle:
    handle.write(f"{time.perf_counter() - started} {code} {maxrss}")
"""


def run_timed(
    argv: list[str], env: dict[str, str], stdin: Path, out: Path, err: Path, timeout: float
) -> Timed:
    """Run ``argv`` as a new process; its wall time, exit code and peak memory (``wait4``, in
    the launcher). The process group is killed if it outlives ``timeout`` or the benchmark is
    interrupted."""
    result = out.with_name("launcher.out")
    result.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *argv]
    with open(stdin, "rb") as stdin_file, open(out, "wb") as out_file, open(err, "wb") as err_file:
        process = subprocess.Popen(
            launcher, stdin=stdin_file, stdout=out_file, stderr=err_file, env=env, start_new_session=True
        )
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        process.wait()
    except BaseException:
        kill()
        process.wait()
        raise
    finally:
        timer.cancel()
    with contextlib.suppress(ProcessLookupError):  # children it left behind
        os.killpg(process.pid, signal.SIGKILL)
    try:
        seconds, code, maxrss = result.read_text().split()
    except (OSError, ValueError):  # the launcher itself was killed
        return Timed(timeout, process.returncode, 0, fired.is_set())
    return Timed(float(seconds), int(code), int(maxrss), fired.is_set())


# --- the benchmark ----------------------------------------------------------------------


@dataclass
class Run:
    """One tool's run of one case in one round, and what the stack did for it."""

    case: str
    tool: str
    round: int
    files: int
    seconds: float | None = None
    exit_code: int | None = None
    reported: int = 0  # files the tool reported uploaded (imgup: result lines)
    stored: int = 0  # objects of the run found in the bucket afterwards
    client_peak_kib: int | None = None
    stack_cpu_s: float | None = None
    stack_settle_s: float | None = None
    stack_peak_kib: int | None = None  # VmHWM during the run (since the start, if it could not be reset)
    stack_rss_kib: dict[str, int] = field(default_factory=dict)  # before and after
    stack_requests: dict[str, int] | None = None  # /_imgup/stats deltas
    proxy_requests: dict[str, int] | None = None  # counted at the proxy, by kind
    problems: list[str] = field(default_factory=list)


@dataclass
class Bench:
    cases: Sequence[Case]
    rounds: int
    tools: Sequence[str]
    peers: dict[str, Peer]
    workdir: Path
    timeout: float = 900.0
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cleanup: dict[str, Any] = field(default_factory=dict)
    stack: Stack | None = None
    peak_reset: bool = True
    last_ids: list[str] = field(default_factory=list)  # what the last imgup run reported

    @property
    def config_dir(self) -> Path:
        return self.workdir / "config"

    def base_env(self) -> dict[str, str]:
        env = isolated_env(self.config_dir)
        env.update(
            AWS_CONFIG_FILE=str(self.workdir / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.workdir / "no-aws-credentials"),
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    def rclone_env(self, endpoint: str) -> dict[str, str]:
        env = {k: v for k, v in self.base_env().items() if k != "AWS_CA_BUNDLE"}  # rclone 1.60 stops on it
        config = self.workdir / "rclone.conf"
        config.touch()
        env.update(
            RCLONE_CONFIG=str(config),
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="testing",
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="testing",
            RCLONE_CONFIG_BENCH_REGION="us-east-1",
            RCLONE_CONFIG_BENCH_ENDPOINT=endpoint,
        )
        return env

    def imgup(self, *args: str, stdin: str = "", config_dir: Path | None = None, timeout: float = 300) -> Any:
        env = {**self.base_env(), "IMGUP_CONFIG_DIR": str(config_dir or self.config_dir)}
        return subprocess.run(  # its own session: a Ctrl-C at the terminal reaches only the benchmark
            [IMGUP, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            start_new_session=True,
        )

    # --- the whole run ------------------------------------------------------------------

    def run(self) -> None:
        self.notes.append(compile_imgup())
        say(f"deploying a local stack in {self.config_dir}")
        try:
            deployed = self.imgup("deploy", "--local", timeout=300)
            if deployed.returncode != 0:
                raise RuntimeError(f"imgup deploy --local failed ({deployed.returncode}):\n{deployed.stderr}")
            self.stack = Stack.read(self.config_dir)
            s3 = s3_client(self.stack.endpoint_url)
            s3.create_bucket(Bucket=PEER_BUCKET)
            if self.stack.stats() is None:
                self.notes.append(
                    f"the stack has no {STATS_PATH}: its request counts are n/a, except what the proxy counts"
                )
            self.peak_reset = self.stack.reset_peak_memory()
            if not self.peak_reset:
                self.notes.append("VmHWM could not be reset: the stack's peak memory is since its start")
            for case in self.cases:
                self.run_case(case, s3)
        finally:
            self.clean_up()

    def run_case(self, case: Case, s3: Any) -> None:
        assert self.stack is not None
        files_dir = self.workdir / "files" / case.key
        say(f"{case.title}: writing {case.files} files of {case.size} bytes")
        paths = write_images(files_dir, case.files, case.size - PNG_OVERHEAD, stem="img")
        assert all(p.stat().st_size == case.size for p in paths)
        stdin = self.workdir / f"{case.key}.paths"
        stdin.write_text("".join(f"{p}\n" for p in paths))
        tools = [t for t in self.tools if t == "imgup" or not self.peers[t].missing]
        with contextlib.ExitStack() as scope:
            proxy = None
            endpoint, imgup_config = self.stack.endpoint_url, self.config_dir
            if case.delay:
                from tests.faults.faultproxy import proxied_config

                proxy = scope.enter_context(LatencyProxy(self.stack.endpoint_url, case.delay))
                endpoint = proxy.url
                # proxied_config reads only the proxy's url
                proxied = proxied_config(self.stack, cast(Any, proxy), self.workdir / "proxied")
                imgup_config = Path(proxied["IMGUP_CONFIG_DIR"])
            for round_ in range(1, self.rounds + 1):
                turn = (round_ - 1) % len(tools)
                for tool in tools[turn:] + tools[:turn]:
                    run = Run(case.key, tool, round_, case.files)
                    command, env = self.command(tool, case, files_dir, endpoint, imgup_config, round_)
                    self.measure(run, command, env, stdin, proxy)
                    self.check_and_clear(run, case, s3)
                    self.runs.append(run)  # only once measured and checked: an interrupted run is left out
                    say(self.describe(run))

    def command(
        self, tool: str, case: Case, files_dir: Path, endpoint: str, imgup_config: Path, round_: int
    ) -> tuple[list[str], dict[str, str]]:
        prefix = f"{case.key}/r{round_}/{tool}"
        if tool == "imgup":
            return [IMGUP, "upload", "-"], {**self.base_env(), "IMGUP_CONFIG_DIR": str(imgup_config)}
        path = self.peers[tool].path
        assert path is not None
        if tool == "aws":
            return [
                path, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", endpoint,
                str(files_dir), f"s3://{PEER_BUCKET}/{prefix}/",
            ], self.base_env()  # fmt: skip
        return [path, "copy", str(files_dir), f"bench:{PEER_BUCKET}/{prefix}"], self.rclone_env(endpoint)

    def measure(
        self, run: Run, command: list[str], env: dict[str, str], stdin: Path, proxy: LatencyProxy | None
    ) -> None:
        assert self.stack is not None
        stack = self.stack
        stack.settle(quiet=0.3)  # after the last run's settle and clean-up: a short check
        if self.peak_reset:
            stack.reset_peak_memory()
        rss_before = stack.memory_kib()["VmRSS"]
        cpu_before, stats_before = stack.cpu_seconds(), stack.stats()
        proxy_before = proxy.snapshot() if proxy else None
        out, err = self.workdir / "stdout", self.workdir / "stderr"
        timed = run_timed(command, env, stdin, out, err, self.timeout)
        run.seconds, run.exit_code, run.client_peak_kib = timed.seconds, timed.exit_code, timed.maxrss_kib
        run.stack_settle_s = round(stack.settle(), 2)
        run.stack_cpu_s = stack.cpu_seconds() - cpu_before
        memory = stack.memory_kib()
        run.stack_peak_kib = memory["VmHWM"]
        run.stack_rss_kib = {"before": rss_before, "after": memory["VmRSS"]}
        stats_after = stack.stats()
        if stats_before and stats_after:
            run.stack_requests = {k: stats_after[k] - stats_before[k] for k in STATS_FIELDS}
        if proxy and proxy_before is not None:
            after = proxy.snapshot()
            run.proxy_requests = {k: after.get(k, 0) - proxy_before.get(k, 0) for k in ("api", "storage")}
        if timed.timed_out:
            run.problems.append(f"killed after {self.timeout:.0f} s")
        if timed.exit_code != 0:
            tail = err.read_text(errors="replace").strip().splitlines()[-3:]
            run.problems.append(f"exit code {timed.exit_code}: {' / '.join(tail)}")
        if run.tool == "imgup":
            lines = [line for line in out.read_text(errors="replace").splitlines() if line.strip()]
            self.last_ids = [line.split("\t")[0] for line in lines]
            run.reported = len(set(self.last_ids))

    def check_and_clear(self, run: Run, case: Case, s3: Any) -> None:
        """Check what the run stored against what it reported; delete it all."""
        assert self.stack is not None
        if run.tool == "imgup":
            objects = stored_objects(s3, self.stack.bucket, "images/")
            run.stored = len(objects)
            if run.reported != case.files:
                run.problems.append(f"{run.reported} distinct ids reported for {case.files} files")
            if self.last_ids:
                ids = "\n".join(self.last_ids) + "\n"
                deleted = self.imgup("delete", "-", "--yes", "-q", stdin=ids, timeout=900)
                if deleted.returncode != 0:
                    run.problems.append(f"imgup delete exited {deleted.returncode}: {deleted.stderr[-300:]}")
            left = stored_objects(s3, self.stack.bucket, "images/")
            if left:  # a failed run may leave objects that no id names
                delete_objects(s3, self.stack.bucket, sorted(left))
        else:
            objects = stored_objects(s3, PEER_BUCKET, f"{case.key}/r{run.round}/{run.tool}/")
            run.stored = len(objects)
            run.reported = run.stored if run.exit_code == 0 else 0
            delete_objects(s3, PEER_BUCKET, sorted(objects))
        if run.stored != case.files:
            run.problems.append(f"{run.stored} objects stored for {case.files} files")
        elif set(objects.values()) != {case.size}:
            run.problems.append(f"stored sizes {sorted(set(objects.values()))[:5]}, expected {case.size}")

    @staticmethod
    def describe(run: Run) -> str:
        text = f"  {run.case} round {run.round} {run.tool}: {run.seconds:.2f} s"
        if run.stack_cpu_s is not None:
            text += f", stack CPU {run.stack_cpu_s:.2f} s"
        return text + (f"; PROBLEMS: {'; '.join(run.problems)}" if run.problems else "")

    def clean_up(self) -> None:
        if (
            not any((self.config_dir / "deployments").glob("*/deployment.json"))
            and not (self.config_dir / "local").exists()
        ):
            return
        say("cleaning up: imgup cleanup --yes")
        # Not to be interrupted half-way: Ctrl-C and SIGTERM wait (cleanup is bounded) until it ends.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            cleaned = self.imgup("cleanup", "--yes", timeout=300)
            self.cleanup["exit_code"] = cleaned.returncode
            if cleaned.returncode != 0:
                say(f"cleanup failed ({cleaned.returncode}):\n{cleaned.stderr}")
            if (self.config_dir / "local" / "local.json").exists():
                self.imgup("local", "stop", timeout=60)
        finally:
            if self.stack is not None:
                self.cleanup["stack_stopped"] = _stopped(self.stack.pid)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def compile_imgup() -> str:
    """Byte-compile imgup's modules, as installing a package does: pip compiles what it
    installs, and so the aws peer runs from compiled modules, but an editable install in an
    environment with PYTHONDONTWRITEBYTECODE=1 (this machine's) leaves every ``imgup`` run
    compiling its source again (0.1 to 0.2 s per run here, measured). Python writes these
    files itself on a user's first run; this makes the benchmark time the runs after it."""
    code = (
        "import compileall, imgup, os, sys; package = os.path.dirname(imgup.__file__); "
        "print(package); sys.exit(not compileall.compile_dir(package, quiet=1))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    package = done.stdout.strip() or "imgup"
    if done.returncode != 0:
        return f"compiling {package} failed ({done.returncode}): imgup may have run from source"
    return f"imgup's modules byte-compiled before the runs ({package}), as an installed package's are"


def _stopped(pid: int, wait: float = 15.0) -> bool:
    """Whether the stack's process is gone (it is killed if it outlives ``wait``)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        fields = _proc_stat(pid)
        if fields is None or fields[0] == "Z":  # gone, or a zombie waiting for its parent
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


# --- figures ----------------------------------------------------------------------------


def _median(values: Iterator[float | None] | list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(bench: Bench) -> dict[str, dict[str, Any]]:
    """Per case and tool: medians over the rounds whose counts were right."""
    summary: dict[str, dict[str, Any]] = {}
    for case in bench.cases:
        rows: dict[str, Any] = {}
        for tool in bench.tools:
            runs = [r for r in bench.runs if r.case == case.key and r.tool == tool]
            good = [r for r in runs if not r.problems and r.seconds is not None]
            if not runs:
                missing = bench.peers[tool].missing if tool in bench.peers else None
                rows[tool] = {"skipped": missing or "not run"}
                continue
            seconds = _median([r.seconds for r in good])
            n = case.files
            per_file = _per_file(good, n)
            rows[tool] = {
                "runs": len(runs),
                "failed": len(runs) - len(good),
                "seconds": seconds,
                "files_per_s": n / seconds if seconds else None,
                "mb_per_s": case.total_bytes / MB / seconds if seconds else None,
                "client_peak_mib": max((r.client_peak_kib or 0) for r in runs) / KiB,
                "stack_cpu_ms_per_file": _scaled(_median([r.stack_cpu_s for r in good]), 1000 / n),
                "stack_peak_mib": _scaled(_max([r.stack_peak_kib for r in good]), 1 / KiB),
                "stack_rss_growth_mib": _scaled(
                    _median(
                        [
                            r.stack_rss_kib["after"] - r.stack_rss_kib["before"]
                            for r in good
                            if r.stack_rss_kib
                        ]
                    ),
                    1 / KiB,
                ),
                **per_file,
            }
        imgup = rows.get("imgup", {})
        for peer in PEERS:
            row = rows.get(peer, {})
            if imgup.get("files_per_s") and row.get("files_per_s"):
                row["imgup_ratio"] = imgup["files_per_s"] / row["files_per_s"]
        summary[case.key] = rows
    return summary


def _per_file(runs: list[Run], n: int) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for name in STATS_FIELDS:
        found[f"stack_{name}_per_file"] = _scaled(
            _median([r.stack_requests[name] if r.stack_requests else None for r in runs]), 1 / n
        )
    total = _median([sum(r.proxy_requests.values()) if r.proxy_requests else None for r in runs])
    found["client_requests_per_file"] = _scaled(total, 1 / n)
    return found


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _max(values: list[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def aws_cost(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """What 1,000 files of each case would cost imgup on AWS, counted by the local stack."""
    cost = {}
    for key, rows in summary.items():
        imgup = rows.get("imgup", {})
        api, calls = imgup.get("stack_apiRequests_per_file"), imgup.get("stack_invocations_per_file")
        cost[key] = {
            "api_gateway_requests": None if api is None else round(api * 1000),
            "lambda_invocations": None if calls is None else round(calls * 1000),
        }
    return cost


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(bench: Bench, summary: dict[str, dict[str, Any]]) -> str:
    """The readable report: one table per case, then what 1,000 files would cost on AWS."""
    header = (
        "tool", "wall s", "files/s", "MB/s", "imgup ratio", "client MiB",
        "stack CPU ms/file", "stack peak MiB", "stack req/file",
    )  # fmt: skip
    out = []
    for case in bench.cases:
        rows = summary[case.key]
        size = f"{case.files} file(s), {case.total_bytes / MB:.1f} MB"
        out.append(f"\n{case.title}: {size}, {bench.rounds} round(s)")
        lines: list[tuple[str, ...]] = [header]
        starred = False
        for tool in bench.tools:
            row = rows.get(tool, {})
            if "skipped" in row:
                lines.append((tool, f"skipped: {row['skipped']}"))
                continue
            requests = row.get("stack_httpRequests_per_file")
            shown = _fmt(requests)
            if requests is None and row.get("client_requests_per_file") is not None:
                shown, starred = _fmt(row["client_requests_per_file"]) + " *", True
            lines.append(
                (
                    tool + (f" ({row['failed']} failed)" if row.get("failed") else ""),
                    _fmt(row.get("seconds"), 2),
                    _fmt(row.get("files_per_s")),
                    _fmt(row.get("mb_per_s"), 2),
                    "-" if tool == "imgup" else _fmt(row.get("imgup_ratio"), 2),
                    _fmt(row.get("client_peak_mib"), 0),
                    _fmt(row.get("stack_cpu_ms_per_file")),
                    _fmt(row.get("stack_peak_mib"), 0),
                    shown,
                )
            )
        out.append(_columns(lines))
        if starred:
            out.append("  * client requests only, counted at the proxy (the stack has no /_imgup/stats)")
    out.append("\nimgup ratio: imgup's files/s / the peer's. Medians of the rounds; MB = 10^6 bytes.")
    out.append("On AWS, 1,000 files would cost imgup (API Gateway requests, Lambda invocations):")
    for case in bench.cases:
        cost = aws_cost(summary)[case.key]
        out.append(
            f"  {case.title}: {_fmt(cost['api_gateway_requests'], 0)} requests, "
            f"{_fmt(cost['lambda_invocations'], 0)} invocations"
        )
    out += [f"Note: {note}" for note in bench.notes]
    return "\n".join(out)


def _columns(lines: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns: the first left, the others right; a skipped tool's row is
    its name and the reason."""
    full = [line for line in lines if not line[1].startswith("skipped")]
    widths = [max(len(cell) for cell in column) for column in zip(*full, strict=True)]
    text = []
    for line in lines:
        if line in full:
            cells = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
            text.append("  " + "  ".join([line[0].ljust(widths[0]), *cells]).rstrip())
        else:
            text.append(f"  {line[0]:<{widths[0]}}  {line[1]}")
    return "\n".join(text)


def environment(peers: dict[str, Peer]) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        return _run_quietly(["git", "-C", str(ROOT), *args])

    return {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "imgup_commit": git("rev-parse", "--short", "HEAD"),
        "imgup_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "peers": {name: peer.as_dict() for name, peer in peers.items()},
    }


# --- the command ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Cases: {', '.join(c.key for c in FULL)}; with --quick: {', '.join(c.key for c in QUICK)}",
    )
    parser.add_argument("--rounds", type=int, help="rounds of each tool in each case (default 3; --quick: 1)")
    parser.add_argument("--cases", help="comma-separated case keys (default: all of the chosen set)")
    parser.add_argument("--quick", action="store_true", help="tiny cases, for a check that it works")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, of: imgup, aws, rclone")
    parser.add_argument("--aws", help="the aws command (default: aws on PATH)")
    parser.add_argument("--rclone", help="the rclone command (default: rclone on PATH)")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per tool run at most (default 900)"
    )
    parser.add_argument("--out", type=Path, help="the JSON report (default bench/results/upload-<time>.json)")
    args = parser.parse_args(argv)
    chosen = QUICK if args.quick else FULL
    known = {c.key: c for c in chosen}
    wanted = args.cases.split(",") if args.cases else list(known)
    unknown = [key for key in wanted if key not in known]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    args.cases = [known[key] for key in wanted]
    args.tools = [t for t in TOOLS if t in args.tools.split(",")]
    if "imgup" not in args.tools:
        parser.error("--tools must include imgup: the figures are ratios to it")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1 or args.timeout <= 0:
        parser.error("--rounds and --timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(timezone.utc)
    out = args.out or ROOT / "bench" / "results" / f"upload-{started:%Y%m%d-%H%M%S}.json"

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    interrupted = stopped_early = False
    with tempfile.TemporaryDirectory(prefix="imgup-bench-") as workdir:
        bench = Bench(args.cases, args.rounds, args.tools, {}, Path(workdir), timeout=args.timeout)
        for name in PEERS:
            if name in args.tools:
                env = bench.rclone_env("") if name == "rclone" else bench.base_env()
                peer = bench.peers[name] = find_peer(name, getattr(args, name), env)
                say(f"{name}: {peer.missing or f'{peer.path} ({peer.version})'}")
        before = environment(bench.peers)
        try:
            bench.run()
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted: the stack was cleaned up; the figures so far follow")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            stopped_early = True
            say(f"failed: {exc}")
            bench.notes.append(f"the benchmark stopped early: {exc}")
    summary = summarise(bench)
    problems = [f"{r.case} round {r.round} {r.tool}: {p}" for r in bench.runs for p in r.problems]
    if bench.cleanup.get("exit_code") not in (0, None) or bench.cleanup.get("stack_stopped") is False:
        problems.append(f"cleanup: {bench.cleanup}")
    report = {
        "command": [sys.executable, *sys.argv] if argv is None else ["bench/upload.py", *argv],
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": before,
        "loadavg_end": os.getloadavg(),
        "rounds": bench.rounds,
        "cases": [asdict(c) for c in bench.cases],
        "summary": summary,
        "aws_cost_per_1000_files": aws_cost(summary),
        "runs": [asdict(r) for r in bench.runs],
        "notes": bench.notes,
        "cleanup": bench.cleanup,
        "interrupted": interrupted,
        "problems": problems,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(bench, summary))
    say(f"JSON: {out}")
    for problem in problems:
        say(f"problem: {problem}")
    if interrupted:
        return 130
    return 1 if problems or stopped_early else 0


if __name__ == "__main__":
    sys.exit(main())
