"""The one error tree of imgup's client side.

Every error a user can meet is an ``ImgupError``; each subclass carries its exit code, and
``imgup.cli`` is the one place that turns an error into ``Error: ...`` on stderr, a hint, and
that exit code. Vendor errors (botocore, httpx) are translated at the boundary where they
happen (``imgup.aws``, ``imgup.api``), never in the commands.

    ImgupError                     exit 1   something failed
    ├── UsageError                 exit 2   bad arguments or input; refused without --yes
    ├── NotDeployed                exit 3   nothing deployed yet, or the deployment is gone
    ├── AwsError                   exit 4   AWS (or the local stack) refused or failed
    │   └── StackFailed            exit 4   the CloudFormation stack ended in a failed state
    ├── ApiError                   exit 5   the image API refused or could not be reached
    │   └── UploadRejected         exit 5   the server refused one upload (size, type, checksum)
    │   └── RouteMissing           exit 5   the deployed API lacks a route (an older stack)
    ├── FileRejected               exit 6   a local file is unfit for upload (checked before any request)
    ├── PartialFailure             exit 6   some items of a batch failed; the others succeeded
    └── AllFailed                  exit 7   every item of a batch failed (each failure is on stderr)

    UserInterrupt                  exit 130 Ctrl-C, with a summary of what was done
    KeyboardInterrupt              exit 130 (handled in imgup.cli)

A command over many items (upload, delete, ...) reports each failed item on its own line as
it happens, and ends with ``batch_failure``: nothing (all succeeded), PartialFailure or
AllFailed. Their problems were already reported one line each, so these are ``reported``:
imgup.cli gives their exit code without printing another error line.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    FAILURE = 1
    USAGE = 2
    NOT_DEPLOYED = 3
    AWS = 4
    API = 5
    SOME_FAILED = 6
    ALL_FAILED = 7
    INTERRUPTED = 130


class ImgupError(Exception):
    """An error meant for a person: what happened, and (hint) what to do next."""

    exit_code = ExitCode.FAILURE
    reported = False  # already shown to the user: only the exit code is left to give

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(ImgupError):
    exit_code = ExitCode.USAGE


class NotDeployed(ImgupError):
    exit_code = ExitCode.NOT_DEPLOYED

    def __init__(self, message: str = "Nothing is deployed yet.", hint: str | None = None) -> None:
        super().__init__(
            message,
            hint or "Run `imgup deploy --local` (no AWS account needed) or `imgup deploy`.",
        )


class AwsError(ImgupError):
    exit_code = ExitCode.AWS


class StackFailed(AwsError):
    pass


class ApiError(ImgupError):
    exit_code = ExitCode.API

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class UploadRejected(ApiError):
    pass


class RouteMissing(ApiError):
    """The API answered that it has no such route: a stack deployed by an older imgup."""


class FileRejected(ImgupError):
    exit_code = ExitCode.SOME_FAILED


class PartialFailure(ImgupError):
    exit_code = ExitCode.SOME_FAILED
    reported = True


class AllFailed(ImgupError):
    exit_code = ExitCode.ALL_FAILED
    reported = True


def batch_failure(failed: int, total: int, what: str) -> ImgupError | None:
    """The error that ends a batch of ``total`` items of which ``failed`` failed, or None.

    ``what`` names the items in the plural ("files", "images"); the message counts them."""
    if not failed:
        return None
    if failed == total:
        return AllFailed(
            f"{'The' if total == 1 else 'All'} {total} {what if total != 1 else what[:-1]} failed."
        )
    return PartialFailure(f"{failed} of {total} {what} failed; the others succeeded.")


class UserInterrupt(ImgupError):
    """Ctrl-C; the message says what was done before it."""

    exit_code = ExitCode.INTERRUPTED
