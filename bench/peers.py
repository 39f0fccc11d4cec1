"""Upload throughput of imgup against its peers, on the local stack.

Peers, each uploading the same N distinct images with W workers to the same local stack:

- ``boto3-put``: boto3 ``put_object`` straight into the bucket: no API, no checks (the floor);
- ``original``: the original tutorial client: ``POST /upload`` then a PUT with Content-Type,
  nothing else (the bucket's notification completes it);
- ``imgup``: imgup's pipeline (``Uploader``): local checks and SHA-256, presign, PUT with the
  signed headers, ``complete`` (which verifies size, checksum and format).

Prints a JSON report with seconds, uploads/s and each peer's time as a ratio of boto3-put.
Timings only: nothing is asserted. Usage: ``python bench/peers.py [-n 100] [-w 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.samples import png_bytes  # noqa: E402

IMGUP = str(Path(sys.executable).with_name("imgup"))


def _imgup(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([IMGUP, *args], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"imgup {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def _timed(work, items, workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, items))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="images per peer")
    parser.add_argument("-w", type=int, default=8, help="concurrent workers")
    parser.add_argument("--size", type=int, default=64 * 1024, help="bytes per image")
    args = parser.parse_args()

    import boto3

    from imgup.api import ImageApi, RetryPolicy, make_http_client
    from imgup.uploads import Uploader, inspect_file

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "IMGUP_CONFIG_DIR": str(Path(tmp) / "config"), "NO_COLOR": "1"}
        pictures = Path(tmp) / "pictures"
        pictures.mkdir()
        files = []
        for i in range(args.n):
            path = pictures / f"img-{i:05d}.png"
            path.write_bytes(png_bytes(args.size) + i.to_bytes(4, "big"))
            files.append(path)
        _imgup(env, "deploy", "--local")
        try:
            info = json.loads(_imgup(env, "status", "--json", "--show-key"))
            s3 = boto3.session.Session(
                aws_access_key_id="bench", aws_secret_access_key="bench", region_name=info["region"]
            ).client("s3", endpoint_url=info["endpointUrl"])
            http = make_http_client(30)
            headers = {"x-api-key": info["apiKey"]}

            def boto3_put(path: Path) -> None:
                s3.put_object(Bucket=info["bucket"], Key=f"peers/{path.name}", Body=path.read_bytes())

            def original(path: Path) -> None:
                data = path.read_bytes()
                grant = http.post(
                    info["apiUrl"] + "/upload",
                    json={"fileName": path.name, "fileType": "image/png", "fileSize": len(data)},
                    headers=headers,
                ).json()
                http.put(grant["uploadUrl"], content=data, headers={"Content-Type": "image/png"})

            api = ImageApi(info["apiUrl"], info["apiKey"], http, RetryPolicy())
            uploader = Uploader(api, http, api.retry)

            def imgup_pipeline(path: Path) -> None:
                uploader.upload(inspect_file(path, 5 * 1024 * 1024), lambda n: None)

            seconds = {
                "boto3-put": _timed(boto3_put, files, args.w),
                "original": _timed(original, files, args.w),
                "imgup": _timed(imgup_pipeline, files, args.w),
            }
            # Let the notifications of the original client's uploads land before cleanup.
            time.sleep(1)
            base = seconds["boto3-put"]
            report = {
                "n": args.n,
                "workers": args.w,
                "bytesPerImage": files[0].stat().st_size,
                "peers": {
                    name: {
                        "seconds": round(value, 3),
                        "uploadsPerSecond": round(args.n / value, 1),
                        "ratioToBoto3Put": round(value / base, 2),
                    }
                    for name, value in seconds.items()
                },
            }
            print(json.dumps(report, indent=2))
        finally:
            _imgup(env, "cleanup", "--yes")


if __name__ == "__main__":
    main()
