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
    ├── FileRejected               exit 6   a local file is unfit for upload (checked before any request)
    └── PartialFailure             exit 6   some items of a batch failed; the others succeeded

    KeyboardInterrupt              exit 130 (handled in imgup.cli)
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
    INTERRUPTED = 130


class ImgupError(Exception):
    """An error meant for a person: what happened, and (hint) what to do next."""

    exit_code = ExitCode.FAILURE

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


class FileRejected(ImgupError):
    exit_code = ExitCode.SOME_FAILED


class PartialFailure(ImgupError):
    exit_code = ExitCode.SOME_FAILED
