"""What the command line prints when a command fails: one line on stderr (what, where, how to fix), exit 2.

A command's own mistakes are raised as ``ValueError``/``OSError`` with a message that already says where (file
and row, the option) and how to fix it; this module only turns them, and the errors of the libraries a command
calls (AWS, pydantic), into that one line. ``nextbest --debug …`` shows the traceback instead.
"""

from __future__ import annotations

from collections.abc import Callable

EXIT = 2
"""The exit status of a failed command, as for a usage error (argparse's)."""


def describe(error: BaseException) -> str:
    """One line for ``error``: the message a command gave, or what the library's error means and what to do."""
    for kind in type(error).__mro__:
        explain = _EXPLAIN.get(f"{kind.__module__}.{kind.__qualname__}")
        if explain is not None:
            return _one_line(explain(error))
    return _one_line(f"{type(error).__name__}: {error} (nextbest --debug … shows where it happened)")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _missing_file(error: BaseException) -> str:
    assert isinstance(error, FileNotFoundError)
    return f"no such file: {error.filename} (check the path; `make demo` writes .nextbest/demo/)"


def _validation(error: BaseException) -> str:
    first = error.errors()[0]  # type: ignore[attr-defined]
    where = ".".join(str(part) for part in first["loc"]) or "the input"
    return f"{error.title}: {where}: {first['msg']}"  # type: ignore[attr-defined]


def _no_credentials(error: BaseException) -> str:
    return f"{error} for AWS: set AWS_PROFILE (or run `aws configure`) and AWS_REGION, then try again"


def _aws(error: BaseException) -> str:
    response = getattr(error, "response", {}).get("Error", {})
    operation = getattr(error, "operation_name", "a request")
    said = f"{response.get('Code')}: {response.get('Message')}"
    return f"AWS refused {operation}: {said} (check the resource's name, the region and the credentials)"


_EXPLAIN: dict[str, Callable[[BaseException], str]] = {
    "builtins.FileNotFoundError": _missing_file,
    "builtins.ValueError": str,
    "builtins.OSError": str,
    "nextbest.decide.scoring.ModelError": str,
    "pydantic_core._pydantic_core.ValidationError": _validation,
    "botocore.exceptions.NoCredentialsError": _no_credentials,
    "botocore.exceptions.NoRegionError": lambda e: f"{e}: set AWS_REGION (or AWS_DEFAULT_REGION) and try again",
    "botocore.exceptions.ClientError": _aws,
}
"""By the qualified name of an error's class (or of a base class), so nothing is imported to recognise it."""
