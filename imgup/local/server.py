"""The local stack's process: moto and the API Gateway emulator on one 127.0.0.1 port.

    /_imgup/health            200 while the process serves
    /_api/<region>/<api>/...  the API Gateway emulator (imgup.local.apigateway)
    everything else           moto's server (S3, DynamoDB, CloudFormation, Lambda, ...)

Successful object-creating S3 requests are reported to the NotificationRouter, which runs the
subscribed function as the bucket's notification would. Run as
``python -m imgup.local.server --state-dir DIR``: it binds an ephemeral port, writes
``DIR/local.json`` (pid, port, endpointUrl) once it serves, logs to ``DIR/local.log``, and
stops cleanly on SIGTERM or SIGINT. ``imgup.local.control`` starts and stops it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from .apigateway import PREFIX, ApiGatewayEmulator
from .lambdas import LambdaRunner
from .notifications import NotificationRouter

HEALTH_PATH = "/_imgup/health"
STATE_FILE = "local.json"
LOG_FILE = "local.log"
log = logging.getLogger("imgup.local")


def _created_event(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(bucket, key, event name) when the request creates an S3 object, else None."""
    method = environ.get("REQUEST_METHOD")
    if method not in {"PUT", "POST"}:
        return None
    path = environ.get("PATH_INFO", "")
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method == "PUT" and not {"partNumber", "uploadId", "tagging", "acl", "retention"} & set(query):
        name = "ObjectCreated:Copy" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "ObjectCreated:Put"
        return bucket, unquote(key), name
    if method == "POST" and "uploadId" in query:
        return bucket, unquote(key), "ObjectCreated:CompleteMultipartUpload"
    return None


class LocalStackApp:
    """The WSGI application of the local stack."""

    def __init__(self, endpoint_url: str) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app

        self.moto = DomainDispatcherApplication(create_backend_app)
        self.runner = LambdaRunner(endpoint_url)
        self.api = ApiGatewayEmulator(self.runner)
        self.notifications = NotificationRouter(self.runner)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"status": "ok", "pid": os.getpid()}).encode()]
        if path.startswith(PREFIX):
            return self.api(environ, start_response)
        created = _created_event(environ)
        if created is None:
            return self.moto(environ, start_response)
        region = NotificationRouter.region_of(environ)
        if region is None:
            return self.moto(environ, start_response)
        status: list[str] = []

        def capture(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        body = list(self.moto(environ, capture))
        if status and status[0].startswith("200"):
            bucket, key, name = created
            size = int(environ.get("CONTENT_LENGTH") or 0)
            self.notifications.object_created(region, bucket, key, size, name)
        return body


def serve(state_dir: Path, port: int = 0) -> None:
    from werkzeug.serving import make_server

    state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=state_dir / LOG_FILE,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Each access line would repeat presigned URLs; keep the log to what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    holder: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return holder["app"](environ, start_response)

    server = make_server("127.0.0.1", port, app, threaded=True)
    endpoint = f"http://127.0.0.1:{server.port}"
    holder["app"] = LocalStackApp(endpoint)

    def stop(signum: int, frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = {"pid": os.getpid(), "port": server.port, "endpointUrl": endpoint, "startedAt": time.time()}
    state_path = state_dir / STATE_FILE
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, state_path)
    log.info("local stack serving on %s (pid %s)", endpoint, os.getpid())
    try:
        server.serve_forever()
    finally:
        holder["app"].notifications.shutdown()
        try:
            if json.loads(state_path.read_text()).get("pid") == os.getpid():
                state_path.unlink()
        except (OSError, ValueError):
            pass
        log.info("local stack stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imgup.local.server")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.state_dir, args.port)


if __name__ == "__main__":
    main()
