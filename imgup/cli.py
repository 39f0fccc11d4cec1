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
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from . import __version__, output
from .errors import AllFailed, ExitCode, ImgupError, NotDeployed, UsageError, UserInterrupt, batch_failure

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
        except _NothingPiped:
            return ExitCode.OK
        except ImgupError as exc:
            if _debug["on"]:
                traceback.print_exc()
            if not exc.reported:
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
    # Help is plain text: no markup mode, so brackets such as [default: 4] are never eaten.
    rich_markup_mode=None,
    help="Deploy and use a serverless image-upload backend, on AWS or on a built-in local stack.\n\n"
    "Start here: imgup deploy --local (no AWS account needed), then imgup upload photo.jpg, "
    "then imgup list.",
)
local_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Start, stop or inspect the built-in local stack.\n\nExample: imgup local status",
)
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
        None, "--stack-name", help="CloudFormation stack name (default: imgup; or IMGUP_STACK_NAME)."
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
        help="Concurrent executions reserved per function (default: 20, or what the stack has); "
        "0 for a new AWS account.",
    ),
    timeout: float = typer.Option(1800, "--wait", help="Seconds to wait for the stack at most (1 to 86400)."),
    json_out: bool = JsonOption,
) -> None:
    """Create or update the stack, then remember it.

    Builds every resource of infra.yaml, on AWS or on the built-in local stack, and remembers
    the deployment beside the others.

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


# --- output formats, the same on every command that prints data (imgup.output) -----------

JsonOut = typer.Option(False, "--json", help="Print one JSON document (an array of objects).")
JsonlOut = typer.Option(False, "--jsonl", help="Print one JSON object per line, as each comes.")
CsvOut = typer.Option(False, "--csv", help="Print CSV with a header row of field names.")
QuietOut = typer.Option(False, "--quiet", "-q", help="Print only the image ids, one per line.")

IMAGE_FIELDS = (
    "imageId",
    "fileName",
    "fileType",
    "fileSize",
    "width",
    "height",
    "sha256",
    "uploadedAt",
    "tags",
    "fileUrl",
    "thumbnailUrl",
)
UPLOAD_FIELDS = (*IMAGE_FIELDS, "duplicate")


def _stdin_lines(separator: bytes = b"\n") -> list[str]:
    from .uploads import read_paths

    stream = sys.stdin
    if stream is None or stream.isatty():
        raise UsageError("'-' reads from standard input, but nothing is piped in.")
    return read_paths(stream.buffer, separator)


class _NothingPiped(Exception):
    """The items were to come from stdin, and it held none: nothing to do (exit 0), as a
    pipeline whose first command found nothing expects (`imgup list -q ... | imgup delete -`)."""


def _items_or_stdin(items: list[str] | None, what: str, separator: bytes = b"\n") -> list[str]:
    """The items given, or those read from stdin for '-' (or when stdin is a pipe and none
    are given); '-' cannot be mixed with items. An empty pipe is _NothingPiped."""
    given = list(items or [])
    stdin = sys.stdin
    if given == ["-"] or (not given and stdin is not None and not stdin.isatty()):
        lines = [line for line in _stdin_lines(separator) if line.strip()]
        if not lines:
            output.note(f"No {what} on standard input: nothing to do.")
            raise _NothingPiped()
        return lines
    if "-" in given:
        raise UsageError(f"'-' (read {what} from stdin) cannot be mixed with {what} given as arguments.")
    return given


@app.command()
def upload(
    files: list[str] | None = typer.Argument(
        None, help="Image files; '-' (or a pipe) reads paths from stdin, one per line."
    ),
    null: bool = typer.Option(
        False, "--null", "-0", help="Paths on stdin are separated by NUL bytes (find -print0)."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-j", help="Parallel uploads (default: 16; or IMGUP_CONCURRENCY)."
    ),
    retries: int | None = typer.Option(
        None, "--retries", help="Retries per request on transient errors (default: 4; or IMGUP_RETRIES)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Show no progress bars."),
    allow_duplicates: bool = typer.Option(
        False,
        "--allow-duplicates",
        help="Upload files whose bytes are in the gallery already (by default each is reported "
        "as the image that has them, and not sent again).",
    ),
    tag: list[str] | None = typer.Option(
        None, "--tag", help="Give every uploaded image this tag, KEY=VALUE (repeat for more)."
    ),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Upload images; one result per file.

    Each file is checked first (a real JPEG, PNG, GIF or WebP within the size limit), then
    sent straight to storage through a presigned URL, with progress bars, and verified. A
    file whose bytes the gallery has already is not sent again: its result is that image,
    with "duplicate": true. So running the same upload again sends only what is missing.

    Example: find . -name '*.jpg' -print0 | imgup upload -0 - --jsonl
    """
    from . import context
    from .display import UploadDisplay
    from .uploads import Interrupted, collect_files, upload_files

    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    paths = _items_or_stdin(files, "paths", b"\0" if null else b"\n")
    if not paths:
        raise UsageError(
            "No files to upload.",
            "Name image files, or pipe paths one per line: `ls *.jpg | imgup upload -`.",
        )
    tags = _tags(tag or [])
    settings = context.settings(
        concurrency=concurrency, retries=retries, stack_name=stack_name, region=region, target=_target(local)
    )
    api, max_bytes = context.upload_api(settings)
    good, bad = collect_files(paths, max_bytes, tags)
    emitter = output.Emitter(
        fmt,
        UPLOAD_FIELDS,
        columns=[
            output.NAME,
            output.SIZE,
            output.TYPE,
            *([output.TAGS] if tags else []),
            output.ID,
            DUPLICATE_COLUMN,
        ],
        plain=("imageId", "fileName"),
        hints={
            "fileName": max((len(f.name) for f in good), default=0),
            "tags": output.tags_width([{"tags": tags}]),
        },
    ).begin()
    for outcome in bad:
        output.error(f"{outcome.source}: {outcome.error}")

    def on_result(local: Any, outcome: Any) -> None:
        if outcome.duplicate:
            image = outcome.image
            output.note(
                f"{outcome.source}: already in the gallery as {image['imageId']} "
                f"({image.get('fileName')}); not uploaded again."
            )
        if outcome.image is not None:
            emitter.row(outcome.image)
        elif outcome.cancelled:
            output.note(f"{outcome.source}: {outcome.error}")
        else:
            output.error(f"{outcome.source}: {outcome.error}")

    display = UploadDisplay(good, enabled=output.animate() and not no_progress, on_result=on_result)
    try:
        with display:
            outcomes = (
                upload_files(
                    good,
                    api,
                    concurrency=settings.concurrency,
                    on_event=display,
                    allow_duplicates=allow_duplicates,
                )
                if good
                else []
            )
    except Interrupted as stop:
        emitter.end()
        uploaded = sum(1 for o in stop.outcomes if o.image)
        failed = sum(1 for o in stop.outcomes if o.error and not o.cancelled) + len(bad)
        raise UserInterrupt(
            f"Interrupted: {uploaded} of {len(paths)} file{_s(len(paths))} uploaded"
            + (" (their results are above)" if uploaded else "")
            + (f", {failed} failed" if failed else "")
            + f", {len(paths) - uploaded - failed} not uploaded."
        ) from None
    emitter.end()
    uploaded = sum(1 for o in outcomes if o.image)
    duplicates = sum(1 for o in outcomes if o.duplicate)
    total = len(paths)
    if total > 1:
        already = (
            f"; {duplicates} {'was' if duplicates == 1 else 'were'} in the gallery already"
            if duplicates
            else ""
        )
        output.note(f"Uploaded {uploaded - duplicates} of {total} file{_s(total)}{already}.")
    failure = batch_failure(total - uploaded, total, "files")
    if failure:
        raise failure


def _s(count: int) -> str:
    return "" if count == 1 else "s"


DUPLICATE_COLUMN = output.Column(
    "duplicate", "Note", render=lambda v: "duplicate" if v else "", width=9, optional=True
)


@app.command("list")
def list_images(
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Show at most N images, newest first (default: 50)."
    ),
    all_images: bool = typer.Option(False, "--all", "-a", help="List every image, streaming, page by page."),
    name: str | None = typer.Option(
        None, "--name", help="Only names matching this glob (* ? [...]; case matters), e.g. 'tmp*'."
    ),
    types: list[str] | None = typer.Option(
        None, "--type", "-t", help="Only this type: jpeg, png, gif or webp (repeat it, or png,gif)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only images uploaded from then on: 2026-01-31, 2026-01-31T08:30 (local), or 7d ago.",
    ),
    until: str | None = typer.Option(
        None, "--until", help="Only images uploaded before then (same forms as --since)."
    ),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="Oldest first instead of newest first."),
    tag: list[str] | None = typer.Option(
        None,
        "--tag",
        help="Only images with this tag, KEY=VALUE, or with this key, KEY (repeat: all must hold).",
    ),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """List the gallery, newest first.

    A table for people, or data for scripts in the format asked for. Shows the newest 50
    and says how many more there are; --all streams every image. The filters are applied by
    the API, never by reading the whole gallery here.

    Example: imgup list --type png --since 7d --name 'tmp*' -q | imgup delete - --yes
    """
    from . import context

    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    if all_images and limit is not None:
        raise UsageError("Give --all or --limit, not both.")
    where = _list_filter(name, types, since, until, tag or [])
    shown_limit = None if all_images else (limit or DEFAULT_LIST_LIMIT)
    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    listing = context.listing(settings, where, oldest_first=oldest_first, limit=shown_limit)
    emitter = output.Emitter(
        fmt,
        IMAGE_FIELDS,
        columns=output.image_columns(),
        plain=("imageId", "fileName", "fileType", "fileSize", "uploadedAt"),
    )
    first_page: list[dict[str, Any]] = []
    for image in listing:
        if fmt is output.Format.TABLE and shown_limit is not None:
            first_page.append(image)  # a table of a known page fits its longest name
            continue
        emitter.row(image)
    if first_page:
        emitter.hints["fileName"] = max(len(str(i.get("fileName", ""))) for i in first_page)
        if any(i.get("tags") for i in first_page):
            emitter.columns = [*emitter.columns[:3], output.TAGS, *emitter.columns[3:]]
            emitter.hints["tags"] = output.tags_width(first_page)
        for image in first_page:
            emitter.row(image)
    emitter.end()
    _say_what_was_listed(emitter.count, listing.remaining, where, oldest_first, fmt)


def _list_filter(
    name: str | None, types: list[str] | None, since: str | None, until: str | None, tags: list[str]
) -> Any:
    """The filters of ``imgup list`` as the API takes them; a usage error for a bad one."""
    import datetime as dt

    from .backend import rules
    from .moments import parse_when, utc_stamp

    now = dt.datetime.now(dt.timezone.utc)
    try:
        where = rules.ListFilter(
            name=rules.parse_glob(name),
            types=rules.parse_types(",".join(types or [])),
            since=None if since is None else utc_stamp(parse_when(since, "--since", now)),
            until=None if until is None else utc_stamp(parse_when(until, "--until", now)),
            tags=rules.parse_tag_filters(tags),
        )
    except rules.ValidationError as exc:
        message = exc.message.replace("name must", "--name must").replace("type must", "--type must")
        raise UsageError(f"--tag: {message}" if exc.field == "tag" else message) from None
    if where.since is not None and where.until is not None and where.since >= where.until:
        raise UsageError("--since must be before --until.")
    return where


def _say_what_was_listed(count: int, remaining: Any, where: Any, oldest_first: bool, fmt: Any) -> None:
    """The note after a listing: how many were shown, and how many more there are."""
    what = "images that match" if not where.empty else "images"
    if count == 0:
        output.note(
            "No image matches." if not where.empty else "No images yet. Upload one: imgup upload photo.jpg"
        )
        return
    if remaining is None or (remaining.exact and remaining.count == 0):
        if fmt is output.Format.TABLE:
            output.note(f"{count} image{_s(count)}")
        return
    which = "oldest" if oldest_first else "newest"
    if remaining.count is None:
        told = f"The {which} {count} {what} are shown; there are more."
    elif remaining.exact:
        told = f"The {which} {count} of {count + remaining.count:,} {what} are shown."
    elif remaining.count:
        told = f"The {which} {count} of at least {count + remaining.count:,} {what} are shown."
    else:
        told = f"The {which} {count} {what} are shown; there may be more."
    output.note(f"{told} See all: imgup list --all{_filter_options(where, oldest_first)}")


def _filter_options(where: Any, oldest_first: bool) -> str:
    import shlex

    options = []
    if where.name is not None:
        options.append(f"--name {shlex.quote(where.name)}")
    if where.types:
        options.append("--type " + ",".join(t.split("/", 1)[1] for t in where.types))
    for option, stamp in (("--since", where.since), ("--until", where.until)):
        if stamp is not None:
            options.append(f"{option} {stamp}")
    if oldest_first:
        options.append("--oldest-first")
    return "".join(" " + option for option in options)


DEFAULT_LIST_LIMIT = 50


@app.command()
def delete(
    image_ids: list[str] | None = typer.Argument(
        None, help="Ids of the images to delete; '-' (or a pipe) reads them from stdin, one per line."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    ignore_missing: bool = typer.Option(
        False, "--ignore-missing", help="An id that is not in the gallery is not an error."
    ),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Delete images by id.

    Deletes the record and the stored object. Asks first at a terminal unless --yes.

    Example: imgup list -q | imgup delete - --yes
    """
    from . import context

    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    ids = [i.strip() for i in _items_or_stdin(image_ids, "ids")]
    ids = [i for i in ids if i]
    if not ids:
        raise UsageError(
            "No image ids to delete.", "Name them, or pipe them: imgup list -q | imgup delete - --yes"
        )
    api = context.image_api(context.settings(stack_name=stack_name, region=region, target=_target(local)))
    if not yes and not _confirmed(f"Delete {len(ids)} image{_s(len(ids))}?"):
        output.note("Cancelled: nothing was deleted.")  # an answer, not an error: exit 0
        return
    emitter = output.Emitter(fmt, ("imageId", "deleted"), columns=[output.ID], plain=("imageId",)).begin()
    failed = 0
    for image_id, error, status in context.delete_images(api, ids):
        if error is None:
            emitter.row({"imageId": image_id, "deleted": True})
        elif status == 404 and ignore_missing:
            output.note(f"{image_id}: not in the gallery (ignored).")
        else:
            failed += 1
            output.error(f"{image_id}: {error}")
    emitter.end()
    failure = batch_failure(failed, len(ids), "deletions")
    if failure:
        raise failure


def _confirmed(question: str) -> bool:
    """The user's answer at the terminal; without a terminal to ask on, a usage error."""
    if not _interactive():
        raise UsageError(
            "Refusing to delete without confirmation (no terminal to ask on).", "Pass --yes to confirm."
        )
    return _ask(question)


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:
        return False


def _tags(pairs: list[str], what: str = "--tag") -> dict[str, str]:
    """KEY=VALUE pairs as tags, checked as the API checks them; a usage error otherwise."""
    from .backend import rules

    tags: dict[str, str] = {}
    try:
        for pair in pairs:
            key, value = rules.parse_tag(pair)
            tags[key] = value or ""
        return rules.validate_tags(tags) if tags else {}
    except rules.ValidationError as exc:
        raise UsageError(
            f"{what}: {exc.message}.",
            f"A tag is KEY=VALUE: keys are {rules.MAX_TAG_KEY_CHARS} characters at most "
            f"(letters, digits, '_', '.', ':', '-'), values {rules.MAX_TAG_VALUE_CHARS}; "
            f"at most {rules.MAX_TAGS} per image.",
        ) from None


def _selecting(stack_name: str | None, region: str | None, local: bool | None) -> Any:
    from . import context

    return context.settings(stack_name=stack_name, region=region, target=_target(local))


def _tag_keys(keys: list[str]) -> list[str]:
    from .backend import rules

    try:
        return rules.validate_tag_keys(keys, "KEY")
    except rules.ValidationError as exc:
        raise UsageError(f"{exc.message}.") from None


def _tag_command(
    image_id: str, set_tags: dict[str, str], remove: list[str], fmt: output.Format, settings: Any
) -> None:
    from . import context
    from .images import change_tags

    api = context.image_api(settings)
    columns = [output.NAME, output.TAGS, output.ID]
    emitter = output.Emitter(fmt, IMAGE_FIELDS, columns=columns, plain=("imageId", "tags"))
    emitter.hints["tags"] = output.tags_width([{"tags": set_tags}], most=60)
    _each_image([image_id], lambda i: change_tags(api, i, set_tags, remove), emitter, "images")


@app.command()
def tag(
    image_id: str = typer.Argument(..., help="Id of the image."),
    pairs: list[str] = typer.Argument(..., help="Tags to set, KEY=VALUE; a key it has gets the new value."),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Tag an image.

    Keys are case-insensitive; an image has at most 10 tags. Prints the image with its tags.

    Example: imgup tag 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b trip=iceland camera=x100
    """
    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    tags = _tags(pairs, "imgup tag")
    settings = _selecting(stack_name, region, local)
    _tag_command(image_id, tags, [], fmt, settings)


@app.command()
def untag(
    image_id: str = typer.Argument(..., help="Id of the image."),
    keys: list[str] = typer.Argument(..., help="Keys of the tags to remove."),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Remove tags from an image.

    A key the image does not have is not an error. Prints the image with its tags.

    Example: imgup untag 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b camera
    """
    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    keys = _tag_keys(keys)
    _tag_command(image_id, {}, keys, fmt, _selecting(stack_name, region, local))


SHOW_FIELDS = (*IMAGE_FIELDS, "objectKey")
DOWNLOAD_FIELDS = ("imageId", "fileName", "fileSize", "sha256", "path")


def _each_image(ids: list[str], action: Any, emitter: output.Emitter, what: str) -> None:
    """Run ``action(id)`` for every id, emitting its result or reporting its failure on one
    line; end with the batch's exit code."""
    from .images import ItemFailed

    failed = 0
    emitter.begin()
    for image_id in ids:
        try:
            emitter.row(action(image_id))
        except ItemFailed as exc:
            failed += 1
            output.error(f"{image_id}: {exc.message}")
    emitter.end()
    failure = batch_failure(failed, len(ids), what)
    if failure:
        raise failure


def _ids(image_ids: list[str] | None) -> list[str]:
    ids = [i.strip() for i in _items_or_stdin(image_ids, "ids")]
    ids = [i for i in ids if i]
    if not ids:
        raise UsageError("No image ids given.", "Name them, or pipe them: imgup list -q | imgup show -")
    return ids


@app.command()
def show(
    image_ids: list[str] | None = typer.Argument(
        None, help="Ids of the images; '-' (or a pipe) reads them from stdin, one per line."
    ),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
) -> None:
    """Show every detail of images.

    Name, type, size, width and height, SHA-256, upload time, object key and a fresh link.

    Example: imgup show 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b --json
    """
    from . import context
    from .images import get_image

    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    ids = _ids(image_ids)
    api = context.image_api(context.settings())
    emitter = output.Emitter(fmt, SHOW_FIELDS, plain=SHOW_FIELDS, vertical=True)
    _each_image(ids, lambda image_id: get_image(api, image_id), emitter, "images")


@app.command()
def download(
    image_ids: list[str] | None = typer.Argument(
        None, help="Ids of the images; '-' (or a pipe) reads them from stdin, one per line."
    ),
    directory: Path = typer.Option(
        Path("."), "--output-dir", "-o", help="Folder to save into (default: the current one)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite files that exist."),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
) -> None:
    """Download images under their stored names, verified.

    Each file's SHA-256 must be the recorded one; a file that exists is never overwritten
    without --force.

    Example: imgup list -q -n 10 | imgup download - -o ./photos
    """
    from . import context
    from .images import download as fetch

    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    ids = _ids(image_ids)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder.", "Create it first, or pass another --output-dir.")
    api = context.image_api(context.settings())
    columns = [output.NAME, output.SIZE, output.Column("path", "Saved as", flexible=True), output.ID]
    emitter = output.Emitter(fmt, DOWNLOAD_FIELDS, columns=columns, plain=("imageId", "path"))
    _each_image(ids, lambda image_id: fetch(api, image_id, directory, force=force), emitter, "downloads")


@app.command("open")
def open_image(
    image_id: str = typer.Argument(..., help="Id of the image."),
) -> None:
    """Open an image in the web browser.

    Where no browser can be started, its link is printed instead.

    Example: imgup open 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b
    """
    import webbrowser

    from . import context
    from .images import ItemFailed, get_image

    api = context.image_api(context.settings())
    try:
        image = get_image(api, image_id)
    except ItemFailed as exc:
        output.error(f"{image_id}: {exc.message}")
        raise AllFailed(exc.message) from None
    url = str(image["fileUrl"])
    if not webbrowser.open(url):
        output.note("No web browser could be started; the link (valid for one hour) is on stdout.")
        output.emit_line(url)


SHARE_FIELDS = ("imageId", "url", "expiresAt", "expiresIn")


@app.command()
def share(
    image_ids: list[str] | None = typer.Argument(
        None, help="Ids of the images; '-' (or a pipe) reads them from stdin, one per line."
    ),
    expires: str = typer.Option(
        "1h", "--expires", "-e", help="How long each link works: 90s, 30m, 12h, 7d (at most 7d; default 1h)."
    ),
    json_out: bool = JsonOut,
    jsonl: bool = JsonlOut,
    csv_out: bool = CsvOut,
    quiet: bool = QuietOut,
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Make links to images that anyone can open, for a while.

    Each link works in any browser, without the API key, for exactly the time given (up to
    7 days); then it answers 410 Gone. Deleting the image ends its links at once.

    Example: imgup share 0f8e0c1c-3a8e-4f4e-9f3a-2b7c8d9e0a1b --expires 2d
    """
    from . import context
    from .backend.rules import MAX_SHARE_SECONDS
    from .images import share_image
    from .moments import describe_seconds, parse_duration

    fmt = output.resolve_format(json_out=json_out, jsonl=jsonl, csv_out=csv_out, quiet=quiet)
    seconds = parse_duration(expires, "--expires", maximum=MAX_SHARE_SECONDS)
    ids = _ids(image_ids)
    api = context.image_api(context.settings(stack_name=stack_name, region=region, target=_target(local)))
    emitter = output.Emitter(fmt, SHARE_FIELDS, plain=("url",), vertical=True)
    try:
        _each_image(ids, lambda image_id: share_image(api, image_id, seconds), emitter, "links")
    finally:
        if emitter.count:
            output.note(f"Each link works for {describe_seconds(seconds)}, for anyone who has it.")


@app.command()
def gallery(
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="Port on 127.0.0.1 to serve the page on (default: a free one)."
    ),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open a browser; only print the link."),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Browse, upload and manage images in a web page.

    Serves the gallery page on 127.0.0.1 for the selected deployment and opens it in the
    browser; the page talks to the deployment's API itself. The link (on stdout) carries this
    run's session; Ctrl-C stops the server.

    Example: imgup gallery --port 8800 --no-open
    """
    import webbrowser

    from . import context
    from .gallery import GalleryServer, PortInUse

    settings = context.settings(stack_name=stack_name, region=region, target=_target(local))
    page = context.gallery_page(settings)
    try:
        server = GalleryServer(page, port)
    except PortInUse:
        raise UsageError(
            f"Port {port} on 127.0.0.1 is in use.",
            "Pick another with --port, or leave it out for a free one.",
        ) from None
    output.emit_line(server.launch_url)
    where = "the local stack" if page.target == "local" else f"AWS {page.region}"
    output.note(f"Serving the gallery of {page.stack_name} ({where}) at {server.url}; Ctrl-C stops it.")
    if not no_open and not webbrowser.open(server.launch_url):
        output.note("No web browser could be started: open the link above.")
    server.serve_until_stopped()
    output.note("Stopped the gallery.")


@app.command()
def status(
    json_out: bool = JsonOption,
    show_key: bool = typer.Option(False, "--show-key", help="Include the API key."),
    stack_name: str | None = StackNameOption,
    region: str | None = RegionOption,
    local: bool | None = TargetOption,
) -> None:
    """Show what is deployed.

    The selected deployment (target, stack, API URL, bucket, table, region), and every
    deployment imgup remembers, with the options that select each.

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
    """Delete everything a deployment made.

    The selected deployment's images, stack and artifacts, then its record. The local stack
    stops once no remembered deployment lives on it.

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
        what = (
            f"stack {deployment.stack_name} ({deployment.target}, {deployment.region}), "
            f"bucket {deployment.bucket} with all its images, and table {deployment.table}"
        )
        if not _confirmed(f"Delete {what}?"):
            output.note("Cancelled: nothing was deleted.")  # an answer, not an error: exit 0
            return
    report = context.cleanup(deployment)
    output.err.print(
        f"[green]Cleaned up[/] stack {deployment.stack_name}: {report.objects_deleted} object "
        f"version(s) deleted, buckets removed: {', '.join(report.buckets_removed) or 'none'}."
    )


def _ask(question: str) -> bool:
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
    """Check that table and bucket agree.

    Every ready image has its object (size, SHA-256), and every object under images/ has a
    record.

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
    """Start the local stack (moto + API emulator) in the background; print its URL.

    Example: imgup local start
    """
    from .local import control

    found, started = control.start()
    output.note(
        f"Local stack {'started' if started else 'already running'} at "
        f"{found.endpoint_url} (pid {found.pid}); log: {found.log_file}"
    )
    output.emit_line(found.endpoint_url)


@local_app.command("stop")
def local_stop() -> None:
    """Stop the local stack (everything deployed on it is gone).

    Example: imgup local stop
    """
    from .local import control

    output.note("Stopped the local stack." if control.stop() else "The local stack was not running.")


@local_app.command("status")
def local_status(json_out: bool = JsonOption) -> None:
    """Say whether the local stack runs, where, and where its log is.

    Example: imgup local status --json
    """
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
