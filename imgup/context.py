"""Collaborators for the commands: settings, AWS targets, API clients, reporters.

The commands in ``imgup.cli`` stay thin by calling one function here each; these functions
wire real defaults (boto3 sessions, an ``httpx.Client``, ``time.sleep``) into the core
modules, which take them as parameters so that tests can pass others.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from rich.markup import escape

from . import config, output
from .api import ImageApi, RetryPolicy, make_http_client
from .aws import AwsTarget, aws_target, local_target
from .config import Deployment, Settings
from .errors import ApiError, NotDeployed, UsageError
from .stack import StackEvent, Waiter


def settings(**flags: Any) -> Settings:
    return config.load_settings(**flags)


class StderrReporter:
    """Deploy and cleanup progress, one line per step or stack event, on stderr."""

    def step(self, text: str) -> None:
        output.err.print(f"[bold]•[/] {escape(output.printable(text))}", highlight=False)

    def stack_event(self, event: StackEvent) -> None:
        colour = (
            "red"
            if event.status.endswith("FAILED")
            else ("green" if event.status.endswith("COMPLETE") else "cyan")
        )
        reason = f"  {event.reason}" if event.reason and event.status.endswith("FAILED") else ""
        detail = output.printable(f"{event.logical_id} ({event.resource_type}){reason}")
        output.err.print(f"  [{colour}]{event.status:<20}[/] {escape(detail)}", highlight=False)


def stop_local_stack() -> bool:
    from .local import control

    return control.stop()


def _local_target(region: str | None) -> AwsTarget:
    from .local import control

    found, started = control.start()
    if started:
        output.note(f"Started the local stack at {found.endpoint_url} (log: {found.log_file})")
    return local_target(found.endpoint_url, region or config.LOCAL_REGION)


def target_for(deployment: Deployment) -> AwsTarget:
    """The AWS target a recorded deployment lives in; NotDeployed when it is gone."""
    if deployment.is_local:
        from .local import control

        found = control.status()
        if found is None or found.endpoint_url != deployment.endpoint_url:
            raise NotDeployed(
                "The local stack that held this deployment is not running any more "
                "(it keeps everything in memory).",
                "Run `imgup deploy --local` to deploy it again.",
            )
        return local_target(found.endpoint_url, deployment.region)
    return aws_target(deployment.profile, deployment.region)


def _waiter(local: bool, timeout: float = 1800) -> Waiter:
    """The local stack answers in moments; AWS takes minutes and is polled less often."""
    return Waiter(interval=0.2, timeout=min(timeout, 120)) if local else Waiter(interval=3.0, timeout=timeout)


def deploy(
    settings: Settings,
    *,
    local: bool,
    alert_email: str | None,
    timeout: float,
    reserved_concurrency: int | None = None,
) -> Any:
    from .deployer import deploy as run_deploy
    from .local import control

    # Concurrent local deploys take turns (the second finds the first one's stack).
    with control.deploying() if local else contextlib.nullcontext():
        target = _local_target(settings.region) if local else aws_target(settings.profile, settings.region)
        waiter = _waiter(local, timeout)
        result = run_deploy(
            target,
            settings.stack_name,
            StderrReporter(),
            waiter,
            local=local,
            profile=settings.profile,
            alert_email=alert_email,
            reserved_concurrency=reserved_concurrency,
        )
        config.save_deployment(result.deployment, result.api_key)
    return result


def image_api(settings: Settings, deployment: Deployment | None = None) -> ImageApi:
    deployment = deployment or config.load_deployment()
    if deployment.is_local:
        target_for(deployment)  # fails clearly when the local stack is gone
    return ImageApi(
        deployment.api_url,
        config.load_api_key(),
        make_http_client(settings.timeout),
        RetryPolicy(retries=settings.retries),
    )


def upload(settings: Settings, paths: list[str], *, json_out: bool) -> list[Any]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    from .uploads import Outcome, Uploader, collect_files, upload_all

    if not paths:
        raise UsageError(
            "No files to upload.",
            "Name image files, or pipe paths one per line: `ls *.jpg | imgup upload -`.",
        )
    deployment = config.load_deployment()
    good, bad = collect_files(paths, deployment.max_upload_bytes)
    for outcome in bad:
        output.error(f"{outcome.source}: {outcome.error}")
    if not good:
        return bad
    api = image_api(settings, deployment)
    uploader = Uploader(api, api.http, api.retry, threading.Event())
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=output.err,
        transient=True,
        disable=not output.err.is_terminal,
    )
    total = progress.add_task("total", total=sum(f.size for f in good), visible=len(good) > 1)
    tasks: dict[Any, Any] = {}

    def on_start(local: Any) -> Any:
        task = progress.add_task(local.name[:40], total=local.size, visible=False)
        tasks[local] = task

        def advance(nbytes: int) -> None:
            progress.update(task, advance=nbytes, visible=True)
            progress.update(total, advance=nbytes)

        return advance

    def on_done(local: Any, outcome: Outcome) -> None:
        progress.update(tasks[local], visible=False)
        if outcome.image is not None:
            if json_out:
                output.emit_json(outcome.image, lines=True)
            else:
                output.emit_line(f"{outcome.image['imageId']}\t{outcome.image['fileName']}")
        else:
            output.error(f"{outcome.source}: {outcome.error}")

    with progress:
        outcomes = upload_all(good, uploader, settings.concurrency, on_start=on_start, on_done=on_done)
    return bad + outcomes


def list_images(settings: Settings, limit: int | None) -> list[dict[str, Any]]:
    return list(image_api(settings).iter_images(limit=limit))


def delete_images(settings: Settings, image_ids: list[str]) -> Iterator[tuple[str, str | None]]:
    api = image_api(settings)
    for image_id in image_ids:
        try:
            api.delete(image_id)
            yield image_id, None
        except ApiError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 403:
                raise
            yield image_id, exc.message


def status_fields(deployment: Deployment, stack_status: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "target": deployment.target,
        "stackName": deployment.stack_name,
        "stackStatus": stack_status,
        "apiUrl": deployment.api_url,
        "bucket": deployment.bucket,
        "table": deployment.table,
        "region": deployment.region,
    }
    if deployment.is_local:
        info["endpointUrl"] = deployment.endpoint_url
    return info


def status(show_key: bool) -> dict[str, Any]:
    from .deployer import require_stack

    deployment = config.load_deployment()
    stack = require_stack(target_for(deployment), deployment)
    info = status_fields(deployment, stack["StackStatus"])
    if show_key:
        info["apiKey"] = config.load_api_key()
    return info


def cleanup(deployment: Deployment) -> Any:
    from .deployer import CleanupReport
    from .deployer import cleanup as run_cleanup

    try:
        target = target_for(deployment)
    except NotDeployed:  # a local deployment whose stack has stopped: nothing is left of it
        output.note("The local stack is not running; its resources are already gone.")
        stop_local_stack()
        config.forget_deployment()
        return CleanupReport()
    report = run_cleanup(target, deployment, StderrReporter(), _waiter(deployment.is_local))
    if deployment.is_local:
        stop_local_stack()
        output.note("Stopped the local stack.")
    config.forget_deployment()
    return report


def doctor(verify_checksums: bool) -> Any:
    from .doctor import check

    deployment = config.load_deployment()
    return check(target_for(deployment), deployment, verify_checksums=verify_checksums)
