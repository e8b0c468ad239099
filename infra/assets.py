"""Lambda code and layers, built on this machine without Docker.

Each asset is assembled by CDK's *local* bundling hook from a list of sources, so what ships is exactly what
a function imports: its own folder with the ``nextbest`` modules its handler imports (``import_closure``), and
the pinned third-party wheels for arm64 (a runtime layer; decide also gets the ML layer). Dev-only code
(``infra/``, the CLI, the lab) is never copied.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infra.import_closure import import_closure

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"
RUNTIME = lambda_.Runtime.PYTHON_3_14
PYTHON_VERSION = "3.14"
PLATFORM = "aarch64-manylinux_2_28"
BUILD_CACHE = ROOT / ".nextbest" / "build"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


@jsii.implements(cdk.ILocalBundling)
class _LocalBundling:
    def __init__(self, build: Callable[[Path], None]) -> None:
        self._build = build

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        self._build(Path(output_dir))
        return True


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _bundled(sources: list[Path], build: Callable[[Path], None]) -> lambda_.Code:
    """A code asset whose hash covers exactly the sources (files or folders) it is built from."""
    return lambda_.Code.from_asset(
        str(ROOT / "functions"),  # nominal source; the custom hash below is what identifies the asset
        asset_hash=_fingerprint(sources),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            local=_LocalBundling(build),  # type: ignore[arg-type]  # jsii passes the options positionally
        ),
    )


def function_code(step: str, extra: dict[str, Path] | None = None) -> lambda_.Code:
    """``functions/<step>``, extra folders copied under the given names (e.g. campaigns for decide), and the
    ``nextbest`` modules its handler imports (directly or not) where Lambda's path finds them first."""
    folders = {".": ROOT / "functions" / step, **(extra or {})}
    modules = sorted(import_closure(ROOT / "functions" / step / "handler.py", SHARED).values())

    def build(out: Path) -> None:
        for name, source in folders.items():
            shutil.copytree(source, out / name, ignore=IGNORED, dirs_exist_ok=True)
        for module in modules:
            target = out / module.relative_to(SHARED)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(module, target)

    return _bundled([*folders.values(), *modules], build)


def runtime_layer_code(requirements: Path = ROOT / "layers" / "runtime" / "requirements.txt") -> lambda_.Code:
    """Third-party wheels for arm64 and the functions' Python, from the hashed lock file; cached by hash."""

    def build(out: Path) -> None:
        cached = BUILD_CACHE / f"layer-{_fingerprint([requirements])[:16]}"
        if not cached.exists():
            staging = cached.with_suffix(".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            _install_wheels(requirements, staging / "python")
            for junk in ["bin", *[str(p.relative_to(staging)) for p in staging.rglob("__pycache__")]]:
                shutil.rmtree(staging / junk, ignore_errors=True)
            staging.rename(cached)
        shutil.copytree(cached, out, dirs_exist_ok=True)

    return _bundled([requirements], build)


def _install_wheels(requirements: Path, target: Path) -> None:
    """The hashed lock's wheels for arm64 and the functions' Python, without their dependencies' guesses."""
    subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--python-platform",
            PLATFORM,
            "--python-version",
            PYTHON_VERSION,
            "--no-compile",
            "--target",
            str(target),
            "-r",
            str(requirements),
        ],
        check=True,
    )


ML_REQUIREMENTS = ROOT / "layers" / "ml" / "requirements.txt"
MODELS = ROOT / "models"
MODELS_MOUNT = "/opt/models"
"""Where the ML layer's model files appear in Lambda (a layer is extracted under /opt)."""
ML_JUNK_DIRS = {"tests", "__pycache__", "bin"}
ML_JUNK_SUFFIXES = {".pyx", ".pxd", ".pxi", ".c", ".cpp", ".h", ".hpp", ".f", ".f90", ".pyi", ".md", ".rst"}


POLICY_MOUNT = "/opt/policy"
"""Where the live targeting policy's files appear in Lambda, when one ships (``nextbest.decide.live``)."""
POLICY_FILES = ("manifest.json", "policy.json", "policy.npz")
"""The live policy's files in a policy directory (not its ``previous/`` or ``challenger/``)."""


def ml_layer_code(
    requirements: Path = ML_REQUIREMENTS, models: Path = MODELS, policy: Path | None = None
) -> lambda_.Code:
    """numpy for arm64, trimmed, plus the verified model set at ``models/`` (arrays read without pickle) and, when
    given, the live policy's files at ``policy/``.

    The wheels are cached by the lock's hash (the install takes a minute); the model and policy files are copied on
    every build, so retraining changes the asset hash without reinstalling anything.
    """
    policy_files = [policy / name for name in POLICY_FILES] if policy is not None else []

    def build(out: Path) -> None:
        cached = BUILD_CACHE / f"ml-layer-{_fingerprint([requirements])[:16]}"
        if not cached.exists():
            staging = cached.with_suffix(".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            _install_wheels(requirements, staging / "python")
            _trim(staging / "python")
            staging.rename(cached)
        shutil.copytree(cached, out, dirs_exist_ok=True)
        shutil.copytree(models, out / "models", ignore=IGNORED, dirs_exist_ok=True)
        if policy_files:
            (out / "policy").mkdir(exist_ok=True)
            for path in policy_files:
                shutil.copyfile(path, out / "policy" / path.name)

    return _bundled([requirements, models, *policy_files], build)


def _trim(site: Path) -> None:
    """Drop what a Lambda never imports: test suites, Cython/C sources and headers, stubs, docs, scripts."""
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in ML_JUNK_DIRS and ".dist-info" not in str(path):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in ML_JUNK_SUFFIXES and ".dist-info" not in str(path.parent):
            path.unlink()


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise RuntimeError("uv is needed to build the runtime layer: run `make venv`")
    return found


def unzipped_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
