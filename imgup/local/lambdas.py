"""Run deployed Lambda functions the way the Lambda service would: in the handlers' own
process (``imgup.local.worker``) or, on one core, in this one.

A function's configuration (handler string, environment) is read from moto's Lambda API, as
CloudFormation created it, once per deploy (the catalog keeps it); the handler string
``imgup_backend.<module>.<name>`` names the same code in ``imgup.backend``. The handler gets
the function's own environment (plus region, the local credentials and ``AWS_ENDPOINT_URL``)
through its ``environ`` argument, so nothing is written to the process's ``os.environ`` and
functions never see each other's settings.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..aws import LOCAL_CREDENTIALS
from ..packaging import PACKAGE_NAME
from .catalog import Catalog
from .inprocess import Clients
from .wire import Tally

if TYPE_CHECKING:
    from .worker import HandlersProcess

log = logging.getLogger("imgup.local")
INVOKE_CONCURRENCY = 4


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout: int


def resolve_handler(handler: str) -> Callable[..., Any]:
    module_name, _, attribute = handler.rpartition(".")
    if not module_name.startswith(PACKAGE_NAME + "."):
        raise LookupError(f"handler {handler!r} is not part of {PACKAGE_NAME}")
    module = importlib.import_module("imgup.backend." + module_name[len(PACKAGE_NAME) + 1 :])
    return getattr(module, attribute)


class LambdaRunner:
    """Looks up functions in moto and invokes their handlers where ``handlers`` runs them."""

    def __init__(
        self,
        endpoint_url: str,
        clients: Clients,
        catalog: Catalog,
        handlers: InProcessHandlers | HandlersProcess | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.handlers = handlers or InProcessHandlers()
        self.clients = clients
        self.catalog = catalog
        self.invocations = Tally()
        # All functions share one process and its one core (the GIL): running more handlers
        # at once only adds contention. Extra invocations queue here, as in a Lambda with
        # reserved concurrency. Their moto calls are answered on other threads, and nothing
        # an invocation waits for needs a slot, so none can starve.
        self._slots = threading.BoundedSemaphore(INVOKE_CONCURRENCY)

    def function(self, region: str, name_or_arn: str) -> FunctionConfig:
        def load() -> FunctionConfig:
            raw = self.clients("lambda", region).get_function_configuration(FunctionName=name_or_arn)
            return FunctionConfig(
                name=raw["FunctionName"],
                arn=raw["FunctionArn"],
                handler=raw["Handler"],
                environment=dict(raw.get("Environment", {}).get("Variables", {})),
                timeout=int(raw.get("Timeout", 3)),
            )

        return self.catalog.get(region, ("function", name_or_arn), load)

    def environ_for(self, function: FunctionConfig, region: str) -> dict[str, str]:
        return {
            **function.environment,
            **self._runtime_environ(region),
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
        }

    def _runtime_environ(self, region: str) -> dict[str, str]:
        """What the Lambda runtime adds to every function's environment here."""
        return {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def warm(self, region: str) -> None:
        """Build, ahead of the first invocation, the boto3 clients that the handlers and the
        stack's own look-ups build on first use (about a second of this process's time,
        which the first upload after a deploy would otherwise wait for). A warm Lambda keeps
        its clients the same way."""
        self.handlers.warm(self._runtime_environ(region))
        for service in ("apigateway", "lambda", "cloudformation", "s3", "dynamodb"):
            self.clients(service, region)

    def invoke(self, region: str, function: FunctionConfig, event: dict[str, Any]) -> Any:
        environ = self.environ_for(function, region)
        self.invocations.add()
        with self._slots:
            return self.handlers.invoke(function, event, environ)


class InProcessHandlers:
    """Handlers run in this process: the counterpart of ``worker.HandlersProcess``, for a
    machine with one core."""

    pid = None

    def invoke(self, function: FunctionConfig, event: dict[str, Any], environ: dict[str, str]) -> Any:
        return run_handler(function, event, environ)

    def warm(self, environ: dict[str, str]) -> None:
        warm_handler_clients(environ)

    def shutdown(self) -> None:
        pass


def run_handler(function: FunctionConfig, event: dict[str, Any], environ: dict[str, str]) -> Any:
    """Run a function's handler on an event, as the Lambda runtime would, with ``environ``
    as the function's environment."""
    request_id = str(uuid.uuid4())
    deadline = time.monotonic() + function.timeout
    context = SimpleNamespace(
        aws_request_id=request_id,
        function_name=function.name,
        invoked_function_arn=function.arn,
        memory_limit_in_mb=128,
        get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)),
    )
    handler = resolve_handler(function.handler)
    started = time.monotonic()
    try:
        return handler(event, context, environ=environ)
    finally:
        log.info(
            "invoked %s request_id=%s in %.0f ms",
            function.name,
            request_id,
            (time.monotonic() - started) * 1000,
        )


def warm_handler_clients(environ: dict[str, str]) -> None:
    """Build the boto3 clients that handlers with this runtime environment use."""
    from imgup.backend import settings

    connection = settings.Connection.from_environ(environ)
    settings.clients(connection)
    settings.lambda_client(connection)
