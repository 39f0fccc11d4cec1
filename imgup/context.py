"""Collaborators for the commands: settings, AWS targets, API clients, reporters.

The commands in ``imgup.cli`` stay thin by calling one function here each; these functions
wire real defaults (boto3 sessions, an ``httpx.Client``, ``time.sleep``) into the core
modules, which take them as parameters so that tests can pass others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import config, output
from .api import ImageApi, RetryPolicy, make_http_client
from .aws import AwsTarget, aws_target, check_region, local_target, region_source
from .config import Deployment, Settings
from .deployments import DeploymentId, Registry, criteria_of, selecting_options
from .errors import ApiError, ImgupError, NotDeployed, UsageError
from .stack import StackEvent, Waiter


def settings(**flags: Any) -> Settings:
    return config.load_settings(**flags)


class StderrReporter:
    """Deploy and cleanup progress, one line per step or stack event, on stderr."""

    def step(self, text: str) -> None:
        from rich.markup import escape

        output.err.print(f"[bold]•[/] {escape(output.printable(text))}", highlight=False)

    def stack_event(self, event: StackEvent) -> None:
        colour = (
            "red"
            if event.status.endswith("FAILED")
            else ("green" if event.status.endswith("COMPLETE") else "cyan")
        )
        reason = f"  {event.reason}" if event.reason and event.status.endswith("FAILED") else ""
        detail = output.printable(f"{event.logical_id} ({event.resource_type}){reason}")
        from rich.markup import escape

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
        return local_target(require_local_stack(deployment), deployment.region)
    return aws_target(deployment.profile, deployment.region)


def require_local_stack(deployment: Deployment) -> str:
    """The endpoint of the running local stack that holds ``deployment``; NotDeployed when
    it is gone. (No boto3: commands that only talk to the API need none.)"""
    from .local import control

    found = control.status()
    if found is None or found.endpoint_url != deployment.endpoint_url:
        raise NotDeployed(
            f"The local stack that held {DeploymentId.of(deployment)} is not running any more "
            "(it keeps everything in memory).",
            f"Run `{DeploymentId.of(deployment).deploy_command()}` to deploy it again.",
        )
    return found.endpoint_url


def _waiter(local: bool, timeout: float = 1800) -> Waiter:
    """The local stack answers in moments; AWS takes minutes and is polled less often."""
    return Waiter(interval=0.2, timeout=min(timeout, 120)) if local else Waiter(interval=3.0, timeout=timeout)


def deploy(
    settings: Settings,
    *,
    alert_email: str | None,
    timeout: float,
    reserved_concurrency: int | None = None,
) -> Any:
    """Check every setting, then deploy and remember the deployment beside the others. Nothing
    is created (no local stack, no bucket) until the region, the options and the config
    directory are known to be good. ``settings.target`` says where: local, else AWS."""
    from .deployer import deploy as run_deploy
    from .local import control

    local = settings.target == "local"
    timeout = config.number("wait", timeout, "--wait", float, 1, 86400)
    if alert_email is not None:
        config.check_alert_email(alert_email)
    given_by = settings.sources.get("region")
    aws: AwsTarget | None = None
    if local:
        region = settings.region or config.LOCAL_REGION
        check_region(region, given_by or "The local stack's default")
    else:
        aws = aws_target(settings.profile, settings.region)  # no request yet
        region = aws.region
        check_region(region, given_by or region_source())
    registry = Registry()
    which = DeploymentId(settings.stack_name, region, "local" if local else "aws")
    registry.prepare(which)
    if aws is not None:
        _refuse_another_account(registry, which, aws)
    # Concurrent local deploys take turns (the second finds the first one's stack).
    with control.deploying() if local else contextlib.nullcontext():
        target = aws or _local_target(region)  # the first side effect: the local stack starts
        result = run_deploy(
            target,
            settings.stack_name,
            StderrReporter(),
            _waiter(local, timeout),
            local=local,
            profile=settings.profile,
            alert_email=alert_email,
            reserved_concurrency=reserved_concurrency,
        )
        registry.save(result.deployment, result.api_key)
    return result


def _refuse_another_account(registry: Registry, which: DeploymentId, target: AwsTarget) -> None:
    """Deploying a remembered stack name and region into another account (another profile)
    would forget the first stack while it still runs: refuse, before creating anything."""
    if which not in registry.ids():
        return
    try:
        known = registry.load(which).account
    except ImgupError:
        return  # an unreadable record: deploying again rewrites it
    if known and known != target.account_id():
        raise UsageError(
            f"imgup remembers {which} in AWS account {known}, and these credentials are for "
            f"account {target.account_id()}.",
            "Use the profile of that account, clean that stack up first (`imgup cleanup "
            f"--aws --stack-name {which.stack_name} --region {which.region}`), or pick another --stack-name.",
        )


def _kept_criteria(settings: Settings) -> dict[str, str]:
    """What selects a deployment on the next command too: IMGUP_* and config.json, not flags."""
    return {k: v for k, v in criteria_of(settings).items() if not settings.sources[k].startswith("--")}


def options_selecting(deployment: Deployment, settings: Settings) -> list[str]:
    """The fewest options that select this deployment on the next command."""
    return selecting_options(DeploymentId.of(deployment), Registry().ids(), _kept_criteria(settings))


def api_key(registry: Registry, which: DeploymentId) -> str:
    """The deployment's API key, with a warning on stderr when others can read its file."""
    key = registry.api_key(which)
    warning = config.key_file_warning(registry.key_path(which))
    if warning:
        output.note(f"Warning: {warning}")
    return key


def selected(settings: Settings) -> Deployment:
    """The deployment the settings select (``imgup.deployments`` has the rule); no request."""
    registry = Registry()
    return registry.load(registry.select(settings))


def image_api(settings: Settings, deployment: Deployment | None = None) -> ImageApi:
    """The API client of the selected deployment (or of ``deployment``)."""
    deployment = deployment or selected(settings)
    if deployment.is_local:
        require_local_stack(deployment)  # fails clearly when the local stack is gone
    return ImageApi(
        deployment.api_url,
        api_key(Registry(), DeploymentId.of(deployment)),
        make_http_client(settings.timeout, tls=not deployment.api_url.startswith("http://")),
        RetryPolicy(retries=settings.retries),
    )


def gallery_page(settings: Settings) -> Any:
    """The gallery page's configuration for the selected deployment (``imgup.gallery``), once
    a request has shown that its API answers to its key: before any browser is opened."""
    from .gallery import PageConfig, storage_origins

    deployment = selected(settings)
    image_api(settings, deployment).list_page(1)
    return PageConfig(
        api_url=deployment.api_url,
        api_key=Registry().api_key(DeploymentId.of(deployment)),
        stack_name=deployment.stack_name,
        target=deployment.target,
        region=deployment.region,
        max_upload_bytes=deployment.max_upload_bytes,
        storage_origins=storage_origins(deployment.api_url, deployment.endpoint_url),
    )


def upload_api(settings: Settings) -> tuple[ImageApi, int]:
    """The API client for uploads and the selected deployment's size limit."""
    deployment = selected(settings)
    return image_api(settings, deployment), deployment.max_upload_bytes


def listing(settings: Settings, where: Any, *, oldest_first: bool, limit: int | None) -> Any:
    """The images of the selected deployment that pass ``where``, read page by page as
    they are iterated (an ``imgup.api.Listing``: after it, ``remaining`` says what is left)."""
    from .api import Listing

    return Listing(image_api(settings), where=where, oldest_first=oldest_first, limit=limit)


def delete_images(api: ImageApi, image_ids: list[str]) -> Iterator[tuple[str, str | None, int | None]]:
    """Delete each image; (id, None, None) when deleted, else (id, why, HTTP status)."""
    from .backend.rules import is_image_id

    for image_id in image_ids:
        if not is_image_id(image_id):
            yield image_id, "not an image id (ids look like 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b).", 400
            continue
        try:
            api.delete(image_id)
            yield image_id, None, None
        except ApiError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 403:
                raise
            yield image_id, exc.message, exc.status


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


def remembered(settings: Settings) -> list[dict[str, Any]]:
    """Every remembered deployment: whether the settings select it, and the fewest options
    that select it on a command (no request)."""
    registry = Registry()
    ids = registry.ids()
    try:
        chosen: DeploymentId | None = registry.select(settings)
    except ImgupError:
        chosen = None
    given = _kept_criteria(settings)
    return [
        {
            "stackName": which.stack_name,
            "target": which.target,
            "region": which.region,
            "selected": which == chosen,
            "selectWith": selecting_options(which, ids, given),
        }
        for which in ids
    ]


def status(settings: Settings, show_key: bool) -> dict[str, Any]:
    from .deployer import require_stack

    registry = Registry()
    which = registry.select(settings)
    deployment = registry.load(which)
    key = api_key(registry, which) if show_key else None  # a broken key file: before any request
    stack = require_stack(target_for(deployment), deployment)
    info = status_fields(deployment, stack["StackStatus"])
    if key is not None:
        info["apiKey"] = key
    return info


def cleanup(deployment: Deployment) -> Any:
    """Delete this deployment and forget it; stop the local stack only when no other
    remembered deployment lives on it."""
    from .deployer import CleanupReport
    from .deployer import cleanup as run_cleanup

    registry = Registry()
    which = DeploymentId.of(deployment)
    try:
        target = target_for(deployment)
    except NotDeployed:  # its local stack has stopped: nothing is left of it but the record
        output.note("The local stack that held it is not running; its resources are already gone.")
        registry.forget(which)
        return CleanupReport()
    report = run_cleanup(target, deployment, StderrReporter(), _waiter(deployment.is_local))
    registry.forget(which)
    if deployment.is_local:
        neighbours = _on_the_same_local_stack(registry, deployment)
        if neighbours:
            output.note(f"The local stack keeps running for {', '.join(map(str, neighbours))}.")
        else:
            stop_local_stack()
            output.note("Stopped the local stack.")
    return report


def _on_the_same_local_stack(registry: Registry, deployment: Deployment) -> list[DeploymentId]:
    found = []
    for which in registry.ids():
        if which.target != "local":
            continue
        try:
            endpoint = registry.load(which).endpoint_url
        except ImgupError:
            endpoint = deployment.endpoint_url  # unreadable: it may live there, so keep the stack
        if endpoint == deployment.endpoint_url:
            found.append(which)
    return found


def doctor(settings: Settings, verify_checksums: bool) -> Any:
    from .doctor import check

    deployment = selected(settings)
    return check(target_for(deployment), deployment, verify_checksums=verify_checksums)
