"""The upload benchmark (bench/upload.py) at CI size, and its latency proxy (bench/latproxy.py).

``bench/upload.py --quick`` runs as a user runs it: it deploys its own local stack, times
``imgup upload`` and the peers on tiny cases, and cleans up. Here ``--aws`` names a program
that does not exist, so the run also shows that a missing peer is reported and skipped;
rclone runs when it is installed. Only that it runs and that its counts agree is asserted,
never a timing. The proxy is tested against a small upstream that records what reaches it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.latproxy import LatencyProxy

ROOT = Path(__file__).resolve().parents[2]
QUICK_CASES = {"8x4k": 8, "8x4k+30ms": 8}


# --- the benchmark, at CI size ----------------------------------------------------------


@dataclass
class BenchRun:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any]

    def runs(self, tool: str) -> list[dict[str, Any]]:
        return [run for run in self.report["runs"] if run["tool"] == tool]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    directory = tmp_path_factory.mktemp("bench")
    out = directory / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/upload.py",
            "--quick",
            "--aws",
            str(directory / "no-such-aws"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    return BenchRun(done.returncode, done.stdout, done.stderr, report)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_quick_benchmark_exits_0_and_prints_a_table_for_every_case(bench: BenchRun) -> None:
    assert bench.code == 0, bench.stderr
    assert "Traceback" not in bench.stderr
    assert bench.report["problems"] == []
    assert [case["key"] for case in bench.report["cases"]] == list(QUICK_CASES)
    for case in bench.report["cases"]:
        assert case["title"] in bench.stdout
    assert bench.stdout.count("files/s") == len(QUICK_CASES) + 1  # each table's header, and the note
    assert "On AWS, 1,000 files would cost imgup" in bench.stdout


@pytest.mark.e2e
@pytest.mark.slow
def test_every_imgup_run_reports_and_stores_each_file_once(bench: BenchRun) -> None:
    runs = bench.runs("imgup")
    assert sorted(run["case"] for run in runs) == sorted(QUICK_CASES)
    for run in runs:
        files = QUICK_CASES[run["case"]]
        assert (run["exit_code"], run["reported"], run["stored"], run["problems"]) == (0, files, files, [])
        assert run["client_peak_kib"] > 0 and run["stack_cpu_s"] >= 0
    for key in QUICK_CASES:
        row = bench.report["summary"][key]["imgup"]
        assert (row["runs"], row["failed"]) == (1, 0)
        assert row["files_per_s"] > 0 and row["client_peak_mib"] > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_every_tool_in_the_proxy_case_goes_through_the_proxy(bench: BenchRun) -> None:
    """imgup's PUTs reach the proxy (its uploadUrl answers were rewritten): one per file."""
    for run in bench.report["runs"]:
        if run["case"] == "8x4k+30ms":
            assert run["proxy_requests"]["storage"] >= 8, run
            if run["tool"] == "imgup":
                assert run["proxy_requests"]["storage"] == 8
                assert run["proxy_requests"]["api"] >= 2  # a presign and a completion at least
        else:
            assert run["proxy_requests"] is None


@pytest.mark.e2e
@pytest.mark.slow
def test_a_missing_peer_is_reported_and_skipped_with_how_to_install_it(bench: BenchRun) -> None:
    assert bench.runs("aws") == []
    for key in QUICK_CASES:
        assert "pip install awscli" in bench.report["summary"][key]["aws"]["skipped"]
    assert "aws     skipped: " in bench.stdout
    assert "no-such-aws is not an executable file" in bench.report["environment"]["peers"]["aws"]["missing"]


@pytest.mark.e2e
@pytest.mark.slow
def test_rclone_stores_each_file_once_when_installed(bench: BenchRun) -> None:
    runs = bench.runs("rclone")
    if shutil.which("rclone") is None:
        assert runs == []
        assert "apt-get install rclone" in bench.report["summary"]["8x4k"]["rclone"]["skipped"]
        return
    assert sorted(run["case"] for run in runs) == sorted(QUICK_CASES)
    for run in runs:
        files = QUICK_CASES[run["case"]]
        assert (run["exit_code"], run["stored"], run["problems"]) == (0, files, [])
    for key in QUICK_CASES:
        assert bench.report["summary"][key]["rclone"]["imgup_ratio"] > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_the_benchmark_cleans_up_its_stack(bench: BenchRun) -> None:
    assert bench.report["cleanup"] == {"exit_code": 0, "stack_stopped": True}


# --- the proxy --------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    host: str
    body_sha256: str


class Upstream:
    """A small HTTP/1.0 server that closes every connection, as werkzeug does, and records
    what reaches it. ``POST .../upload`` and ``POST .../uploads`` answer presign grants."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                upstream.seen.append(
                    Seen(self.command, self.path, self.headers["host"], hashlib.sha256(body).hexdigest())
                )
                signed = f"{upstream.url}/bucket/images/a/x.png?X-Amz-Signature=abc"
                if self.path.endswith("/uploads"):
                    answer: dict[str, Any] = {
                        "uploads": [{"imageId": "a", "uploadUrl": signed}, {"error": "no"}]
                    }
                elif self.path.endswith("/upload"):
                    answer = {"imageId": "a", "uploadUrl": signed, "fileUrl": signed}
                else:
                    answer = {"uploadUrl": signed}  # not a presign route: left alone
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PUT = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1})

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def proxied() -> Iterator[tuple[Upstream, LatencyProxy]]:
    with Upstream() as upstream, LatencyProxy(upstream.url, delay=0.001) as proxy:
        yield upstream, proxy


def test_the_proxy_sends_the_upload_urls_of_single_and_batch_presigns_through_itself(
    proxied: tuple[Upstream, LatencyProxy],
) -> None:
    upstream, proxy = proxied
    with httpx.Client(timeout=10) as client:
        single = client.post(f"{proxy.url}/_api/r/id/v1/upload", json={}).json()
        batch = client.post(f"{proxy.url}/_api/r/id/v1/uploads", json={}).json()
        other = client.post(f"{proxy.url}/_api/r/id/v1/images/a/complete", json={}).json()
    expected = f"{proxy.url}/bucket/images/a/x.png?X-Amz-Signature=abc"
    assert single["uploadUrl"] == expected
    assert single["fileUrl"].startswith(upstream.url)  # only the upload URL is rewritten
    assert batch["uploads"] == [{"imageId": "a", "uploadUrl": expected}, {"error": "no"}]
    assert other["uploadUrl"].startswith(upstream.url)
    assert proxy.snapshot() == {"api": 3}


def test_the_proxy_forwards_with_the_upstreams_host_unless_the_client_signed_its_own(
    proxied: tuple[Upstream, LatencyProxy],
) -> None:
    upstream, proxy = proxied
    body = bytes(range(256)) * 4096  # 1 MiB: streamed in pieces
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=x/y, SignedHeaders=host, Signature=z"}
    with httpx.Client(timeout=10) as client:
        assert client.put(f"{proxy.url}/bucket/key?X-Amz-Signature=abc", content=body).status_code == 200
        assert client.put(f"{proxy.url}/bucket/other", content=b"x", headers=signed).status_code == 200
    presigned, header_signed = upstream.seen
    assert presigned.host == upstream.url.removeprefix("http://")
    assert presigned.body_sha256 == hashlib.sha256(body).hexdigest()
    assert header_signed.host == proxy.url.removeprefix("http://")
    assert proxy.snapshot() == {"storage": 2}


def test_the_proxy_keeps_the_client_connection_open_and_answers_expect_100_continue(
    proxied: tuple[Upstream, LatencyProxy],
) -> None:
    upstream, proxy = proxied
    connection = http.client.HTTPConnection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]), timeout=10)
    try:
        for n in range(3):
            headers = {"Content-Length": "5", "Expect": "100-continue"} if n == 1 else {"Content-Length": "5"}
            connection.request("PUT", f"/bucket/k{n}", body=b"hello", headers=headers)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
            assert not answer.will_close
        assert connection.sock is not None  # one connection served all three
    finally:
        connection.close()
    assert [seen.path for seen in upstream.seen] == ["/bucket/k0", "/bucket/k1", "/bucket/k2"]
    assert {seen.body_sha256 for seen in upstream.seen} == {hashlib.sha256(b"hello").hexdigest()}
    assert proxy.errors == {}


def test_the_proxy_answers_502_when_the_upstream_is_gone() -> None:
    with Upstream() as upstream:
        url = upstream.url
    with LatencyProxy(url, delay=0.0) as proxy, httpx.Client(timeout=10) as client:
        assert client.get(f"{proxy.url}/anything").status_code == 502


# --- the report -------------------------------------------------------------------------


def test_the_report_shows_the_stacks_requests_per_file_and_the_aws_cost_when_the_stack_counts_them(
    tmp_path: Path,
) -> None:
    from bench.upload import Bench, Case, Peer, Run, aws_cost, summarise, table

    case = Case("2x1k", "2 x 1 KiB", 2, 1024)
    counted = {"httpRequests": 8, "apiRequests": 2, "invocations": 3, "storageOps": 6}
    runs = [
        Run(
            "2x1k", "imgup", 1, 2, seconds=1.0, reported=2, stored=2, stack_cpu_s=0.1, stack_requests=counted
        ),
        Run("2x1k", "rclone", 1, 2, seconds=0.5, reported=2, stored=2, stack_cpu_s=0.02),
    ]
    peers = {"aws": Peer("aws", missing="aws is not on PATH (install: ...)"), "rclone": Peer("rclone", "/x")}
    bench = Bench([case], 1, ["imgup", "aws", "rclone"], peers, tmp_path, runs=runs)
    summary = summarise(bench)
    assert summary["2x1k"]["imgup"]["stack_httpRequests_per_file"] == 4
    assert summary["2x1k"]["rclone"]["imgup_ratio"] == 0.5
    assert summary["2x1k"]["aws"] == {"skipped": "aws is not on PATH (install: ...)"}
    assert aws_cost(summary) == {"2x1k": {"api_gateway_requests": 1000, "lambda_invocations": 1500}}
    text = table(bench, summary)
    assert "2 x 1 KiB: 1,000 requests, 1,500 invocations" in text
    assert "aws     skipped: aws is not on PATH" in text
    imgup_row = next(line for line in text.splitlines() if line.strip().startswith("imgup "))
    assert imgup_row.split()[-1] == "4.0"  # requests per file, from the stack's own count
