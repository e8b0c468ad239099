"""The Lambda runtime: each function's handler file, run from its synthesized asset with the environment the
template gives it, in this process.

``nextbest`` and the third-party packages come from this process (the venv), shared by every function: what
each asset holds on its own is checked by the infra tests, which import every handler from its asset alone.
Output (logs and EMF metrics) goes to one file per function, as CloudWatch would keep it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3

from infra.local.emulator.account import ACCOUNT, PARTITION, REGION
from infra.local.emulator.grants import Request, dynamodb_requests
from infra.local.emulator.provisioning import Deployment


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Function:
    logical_id: str
    name: str
    environment: dict[str, str]
    handler_file: Path
    handler_name: str
    log: io.TextIOBase
    module: ModuleType | None = None
    twin: ModuleType | None = None
    """A second execution environment's copy of the handler (its own module state), for a second worker."""
    invocations: int = 0
    records: int = 0
    aws_calls: Counter[str] = field(default_factory=Counter)
    """AWS API calls the function made, by ``service.Operation`` (counted by a botocore hook)."""
    dynamodb_requests: set[Request] = field(default_factory=set)
    """What IAM authorises each of its DynamoDB calls as: (action, table or index ARN)."""


class LambdaRuntime:
    """The template's functions, invoked as Lambda would, one at a time."""

    def __init__(self, deployment: Deployment, logs: Path) -> None:
        self.deployment = deployment
        self.logs = logs
        self.functions: dict[str, Function] = {}
        self.current: Function | None = None
        self.after_invoke: list[Callable[[], None]] = []
        """Called after every invocation (the emulation stamps what moto recorded as sent meanwhile)."""

    def count_calls(self) -> None:
        """Count the AWS calls each function makes, and record what IAM authorises its DynamoDB calls as, by
        hooks on the default session: call it before any client is created (a botocore client copies the
        session's hooks when it is created)."""
        boto3.DEFAULT_SESSION.events.register("before-call", self._count_call)  # type: ignore[union-attr]
        boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
            "before-parameter-build.dynamodb", self._record_dynamodb_request
        )

    def load(self) -> None:
        """Every function of the template, by logical id; its handler is imported on first invocation."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for logical_id, props in self.deployment.of_type("AWS::Lambda::Function"):
            env = {k: self.deployment.resolve(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
            env = {k: self.deployment.in_layers(props, v) for k, v in env.items()}
            module_file, handler_name = props["Handler"].rsplit(".", 1)
            handler_file = self.deployment.asset(logical_id) / f"{module_file}.py"
            name = env.get("POWERTOOLS_SERVICE_NAME", logical_id)
            log = (self.logs / f"{name}.log").open("w")
            self.functions[logical_id] = Function(logical_id, name, env, handler_file, handler_name, log)
            self.deployment.physical[logical_id] = name

    def environment(self, step: str) -> dict[str, str]:
        """The resolved environment of the function for a pipeline step (``ingest``, ``decide``…)."""
        return next(f.environment for f in self.functions.values() if f.name == step)

    def flush_logs(self) -> None:
        for function in self.functions.values():
            function.log.flush()

    def invoke(self, function: Function, event: dict[str, Any], twin: bool = False) -> Any:
        """Run the handler on ``event``; ``twin``: in a second execution environment (a second worker running
        at the same time as the first, with its own module state)."""
        function.records += len(event.get("Records", []))
        try:
            with self._as(function):
                module = self._module(function, twin)
                function.invocations += 1
                return getattr(module, function.handler_name)(event, LambdaContext(function.name))
        finally:
            for hook in self.after_invoke:
                hook()

    def _module(self, function: Function, twin: bool) -> ModuleType:
        if twin:
            if function.twin is None:
                function.twin = _import(f"lambda_{function.logical_id}_twin", function.handler_file)
            return function.twin
        if function.module is None:
            function.module = _import(f"lambda_{function.logical_id}", function.handler_file)
        return function.module

    def call_url(self, url: str, method: str = "GET", body: str = "") -> dict[str, Any]:
        """Invoke the function behind a function URL as Lambda would (payload format 2.0)."""
        [target] = [t for base, t in self.deployment.urls.values() if url.startswith(base)]
        return dict(self.invoke(self.functions[target], url_event(url, method, body)))

    @contextlib.contextmanager
    def _as(self, function: Function) -> Iterator[None]:
        """The function's environment and log for the duration of one invocation."""
        saved = {k: os.environ.get(k) for k in function.environment}
        os.environ.update(function.environment)
        outer, self.current = self.current, function
        try:
            with contextlib.redirect_stdout(function.log):  # type: ignore[type-var]
                yield
        finally:
            self.current = outer
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _count_call(self, event_name: str, **kwargs: Any) -> None:
        if self.current is not None:
            _, service, operation = event_name.split(".", 2)
            self.current.aws_calls[f"{service}.{operation}"] += 1

    def _record_dynamodb_request(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if self.current is not None:
            self.current.dynamodb_requests |= dynamodb_requests(model.name, params)


def _import(name: str, file: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def url_event(url: str, method: str, body: str) -> dict[str, Any]:
    """A function URL request (payload format 2.0)."""
    parts = urlsplit(url)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "queryStringParameters": dict(parse_qsl(parts.query)) or None,
        "body": body,
        "isBase64Encoded": False,
        "headers": {"content-type": "application/x-www-form-urlencoded", "host": parts.netloc},
        "requestContext": {
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "local",
            },
            "requestId": str(uuid.uuid4()),
            "stage": "$default",
            "domainName": parts.netloc,
        },
    }
