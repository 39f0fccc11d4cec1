"""The imgup command line: thin commands over the core modules.

Each command parses its options, builds its collaborators (``imgup.context``), calls the core,
and renders the result with ``imgup.output``. Errors are rendered in one place,
``ImgupGroup.main``: ``Error: ...`` and a hint on stderr, and the error's exit code.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from . import __version__, output
from .errors import ExitCode, ImgupError, NotDeployed, PartialFailure, UsageError

_debug = {"on": bool(os.environ.get("IMGUP_DEBUG"))}


class _Interrupted(Exception):
    """Ctrl-C, carried past Typer's handling to ImgupGroup._run."""


class ImgupGroup(TyperGroup):
    """Runs commands and turns every error into a message and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        code = self._run(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: Any) -> Any:
        # Typer's own main turns Ctrl-C into a silent exit 130; catch it first, to say so.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def _run(self, args: Any, prog_name: Any, complete_var: Any, **extra: Any) -> int:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or "imgup",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except (KeyboardInterrupt, _Interrupted, typer.Abort):
            output.error("Interrupted.")
            return ExitCode.INTERRUPTED
        except ImgupError as exc:
            if _debug["on"]:
                traceback.print_exc()
            output.error(exc.message, exc.hint)
            return exc.exit_code
        except Exception as exc:
            if _is_usage_error(exc):  # Typer's (vendored) click: bad option, missing argument
                exc.show()  # type: ignore[attr-defined]
                return int(exc.exit_code)  # type: ignore[attr-defined]
            # Anything else is a bug: say so, without locals or secrets.
            if _debug["on"]:
                traceback.print_exc()
            output.error(
                f"Unexpected {type(exc).__name__}: {exc}",
                "This is a bug in imgup; re-run with --debug and report the traceback.",
            )
            return ExitCode.FAILURE
        return result if isinstance(result, int) else ExitCode.OK


def _is_usage_error(exc: Exception) -> bool:
    """True for click's ClickException family, whichever click module Typer uses."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


app = typer.Typer(
    cls=ImgupGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="Deploy and use a serverless image-upload backend, on AWS or on a built-in local stack.",
)
local_app = typer.Typer(no_args_is_help=True, help="Start, stop or inspect the built-in local stack.")
app.add_typer(local_app, name="local")

JsonOption = typer.Option(False, "--json", help="Print data as JSON on stdout.")
# Which remembered deployment a command uses (imgup.deployments has the rule; `imgup status`
# lists them with the options that select each).
StackNameOption = typer.Option(
    None,
    "--stack-name",
    help="Use the deployment of this stack (default: IMGUP_STACK_NAME, config.json, else the "
    "only deployment, else the one named imgup).",
)
RegionOption = typer.Option(None, "--region", help="Use the deployment in this region.")
TargetOption = typer.Option(None, "--local/--aws", help="Use the deployment on the local stack, or on AWS.")


def _target(local: bool | None) -> str | None:
    return None if local is None else ("local" if local else "aws")


def _version(value: bool) -> None:
    if value:
        output.emit_line(f"imgup {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """imgup: upload images through presigned URLs to a private S3 bucket, list and manage them.

    Start with `imgup deploy --local` (no AWS account needed), then `imgup upload photo.jpg`.
    """
    if debug:
        _debug["on"] = True


@app.command()
def deploy(
    local: bool | None = typer.Option(
        None,
        "--local/--aws",
        help="Deploy to the built-in local stack (started if needed), or to AWS (the default).",
    ),
    stack_name: str | None = typer.Option(
        None, "--stack-name", help="CloudFormation stack name (default: imgup)."
    ),
    region: str | None = typer.Option(
        None, "--region", help="AWS region (default: AWS_REGION, then boto3's chain; local: us-east-1)."
    ),
    profile: str | None = typer.Option(None, "--profile", help="AWS profile (default: boto3's chain)."),
    alert_email: str | None = typer.Option(
        None, "--alert-email", help="E-mail address for alarm notifications."
    ),
    reserved_concurrency: int | None = typer.Option(
        None,
        "--reserved-concurrency",
        min=0,
        help="Concurrent executions reserved per function (template default: 20); 0 for a new AWS account.",
    ),
    timeout: float = typer.Option(1800, "--wait", help="Seconds to wait for the stack at most (1 to 86400)."),
    json_out: bool = JsonOption,
) -> None:
    """Create or update the whole stack from infra.yaml, then remember it beside the others.

    Example: imgup deploy --local
    """
    from . import context

    started = time.monotonic()
    settings = context.settings(stack_name=stack_name, region=region, profile=profile, target=_target(local))
    result = context.deploy(
        settings,
        alert_email=alert_email,
        timeout=timeout,
        reserved_concurrency=reserved_concurrency,
    )
    elapsed = time.monotonic() - started
    info = context.status_fields(result.deployment, result.deployment.stack_status)
    if json_out:
        output.emit_json(info)
    verb = "Deployed" if result.changed else "Already up to date:"
    output.err.print(
        f"[green]{verb}[/] stack [bold]{result.deployment.stack_name}[/] "
        f"({result.deployment.target}) in {elapsed:.1f} s"
    )
    _print_fields(info)
    # With several deployments remembered, the next commands may need options to reach this one.
    options = "".join(" " + option for option in context.options_selecting(result.deployment, settings))
    output.note(f"Next: imgup upload{options} photo.jpg   (then: imgup list{options})")


def _print_fields(info: dict[str, Any]) -> None:
    width = max(len(k) for k in info)
    for key, value in info.items():
        output.note(f"  {key:<{width}}  {value}")


@app.command()
def upload(
    files: list[str] | None = typer.Argument(
        None, help="Image files; '-' (or a pipe) reads paths from stdin, one per line."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object per uploaded file (JSON Lines)."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-j", help="Parallel uploads [default: 4]."
    ),
    retries: int | None = typer.Option(
        None, "--retries", help="Retries per request on transient errors [default: 4]."
    ),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Upload images through presigned URLs, with a progress bar per file.

    Example: imgup upload a.jpg b.png --json
    """
    from . import context

    paths = list(files or [])
    stdin = sys.stdin
    if paths == ["-"] or (not paths and stdin is not None and not stdin.isatty()):
        from .uploads import read_paths

        paths = read_paths(stdin.buffer) if stdin is not None else []
    elif "-" in paths:
        raise UsageError("'-' (read paths from stdin) cannot be mixed with file names.")
    settings = context.settings(
        concurrency=concurrency, retries=retries, stack_name=stack_name, region=region, target=_target(local)
    )
    outcomes = context.upload(settings, paths, json_out=json_out)
    failed = [o for o in outcomes if o.error]
    done = len(outcomes) - len(failed)
    output.note(f"Uploaded {done} of {len(outcomes)} file{'s' if len(outcomes) != 1 else ''}.")
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(outcomes)} files failed (see above).")


@app.command("list")
def list_images(
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array of images on stdout."),
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Show at most N images (newest first)."
    ),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """List the gallery, newest first: a table for people, or JSON for scripts.

    Example: imgup list --json | jq -r '.[].fileUrl'
    """
    from . import context

    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    images = context.list_images(settings, limit)
    if json_out:
        output.emit_json([output.image_fields(i) for i in images])
        return
    if not images:
        output.note("No images yet. Upload one: imgup upload photo.jpg")
        return
    output.print_table(output.images_table(images))
    output.note(f"{len(images)} image{'s' if len(images) != 1 else ''}")


@app.command()
def delete(
    image_ids: list[str] = typer.Argument(..., help="Ids of the images to delete."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per deleted image."),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Delete images (object and record) by id.

    Example: imgup list --json | jq -r '.[].imageId' | xargs imgup delete
    """
    from . import context

    failures = 0
    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    for image_id, error in context.delete_images(settings, image_ids):
        if error:
            failures += 1
            output.error(f"{image_id}: {error}")
        elif json_out:
            output.emit_json({"imageId": image_id, "deleted": True}, lines=True)
        else:
            output.emit_line(image_id)
    if failures:
        raise PartialFailure(f"{failures} of {len(image_ids)} deletions failed.")


@app.command()
def status(
    json_out: bool = JsonOption,
    show_key: bool = typer.Option(False, "--show-key", help="Include the API key."),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Show the selected deployment (target, stack, API URL, bucket, table, region) and list
    every deployment imgup remembers, with the options that select each.

    Example: imgup status --json --show-key
    """
    from . import context

    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    deployments = context.remembered(settings)
    try:
        info = context.status(settings, show_key=show_key)
    except ImgupError:  # nothing selected, or it is gone: still say what is remembered
        if json_out and deployments:
            output.emit_json({"deployments": deployments})
        _print_deployments(deployments)
        raise
    if json_out:
        output.emit_json({**info, "deployments": deployments})
    else:
        _print_fields(info)
    if len(deployments) > 1:
        _print_deployments(deployments)


def _print_deployments(deployments: list[dict[str, Any]]) -> None:
    if not deployments:
        return
    output.note(f"imgup remembers {len(deployments)} deployment{'s' if len(deployments) != 1 else ''}:")
    width = max(len(d["stackName"]) for d in deployments)
    for item in deployments:
        mark = "*" if item["selected"] else " "
        options = " ".join(item["selectWith"]) or "(used when no option selects another)"
        output.note(
            f"  {mark} {item['stackName']:<{width}}  {item['target']:<5}  {item['region']:<14}  {options}"
        )
    chosen = "* = selected. " if any(d["selected"] for d in deployments) else "None is selected. "
    output.note(
        chosen + "Every command takes the options shown (or IMGUP_STACK_NAME, IMGUP_REGION, IMGUP_TARGET)."
    )


@app.command()
def cleanup(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Delete the selected deployment: its images, stack and artifacts, then forget it. The
    local stack stops once no remembered deployment lives on it.

    Example: imgup cleanup --yes
    """
    from . import context

    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    if not context.remembered(settings):
        if context.stop_local_stack():
            output.note("Stopped the local stack.")
        raise NotDeployed("Nothing is deployed, so there is nothing to clean up.")
    deployment = context.selected(settings)
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise UsageError(
                "Refusing to delete without confirmation (no terminal to ask on).",
                "Pass --yes to confirm.",
            )
        what = (
            f"stack {deployment.stack_name} ({deployment.target}, {deployment.region}), "
            f"bucket {deployment.bucket} with all its images, and table {deployment.table}"
        )
        if not _confirm(f"Delete {what}?"):
            output.note("Cancelled: nothing was deleted.")  # an answer, not an error: exit 0
            return
    report = context.cleanup(deployment)
    output.err.print(
        f"[green]Cleaned up[/] stack {deployment.stack_name}: {report.objects_deleted} object "
        f"version(s) deleted, buckets removed: {', '.join(report.buckets_removed) or 'none'}."
    )


def _confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin; only y or yes agrees. (click's confirm
    writes a space to stdout, which carries data only.)"""
    output.err.print(f"{output.printable(question)} [y/N]: ", end="", markup=False)
    answer = sys.stdin.readline()
    if not answer:  # end of input: no answer is no
        output.note("")
    return answer.strip().lower() in {"y", "yes"}


@app.command()
def doctor(
    json_out: bool = JsonOption,
    quick: bool = typer.Option(False, "--quick", help="Skip reading objects to verify checksums."),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Check that table and bucket agree: every ready image has its object (size, SHA-256),
    and every object under images/ has a record.

    Example: imgup doctor --json
    """
    from . import context

    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    report = context.doctor(settings, verify_checksums=not quick)
    if json_out:
        output.emit_json(report.as_dict())
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.records.items())) or "no records"
    output.note(f"Records: {counts}; objects under images/: {report.objects}")
    for problem in report.problems:
        output.error(f"{problem.kind}: {problem.subject}: {problem.detail}")
    if not report.healthy:
        raise ImgupError(f"{len(report.problems)} inconsistencies found.")
    output.note("Consistent: every ready image has its object, and every object has a record.")


@local_app.command("start")
def local_start() -> None:
    """Start the local stack (moto + API emulator) in the background; print its URL."""
    from .local import control

    found, started = control.start()
    output.note(
        f"Local stack {'started' if started else 'already running'} at "
        f"{found.endpoint_url} (pid {found.pid}); log: {found.log_file}"
    )
    output.emit_line(found.endpoint_url)


@local_app.command("stop")
def local_stop() -> None:
    """Stop the local stack (everything deployed on it is gone)."""
    from .local import control

    output.note("Stopped the local stack." if control.stop() else "The local stack was not running.")


@local_app.command("status")
def local_status(json_out: bool = JsonOption) -> None:
    """Say whether the local stack runs, where, and where its log is."""
    from .config import local_state_dir
    from .local import control

    found = control.status()
    info = {
        "running": found is not None,
        "endpointUrl": found.endpoint_url if found else None,
        "pid": found.pid if found else None,
        "logFile": str(found.log_file if found else local_state_dir() / "local.log"),
    }
    if json_out:
        output.emit_json(info)
    else:
        _print_fields(info)
    if found is None:
        raise NotDeployed("The local stack is not running.", "Start it: imgup deploy --local")


def main() -> None:
    app()
