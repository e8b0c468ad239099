"""The ``nextbest`` command line: every command group registers its parser, and runs only what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from nextbest_cli.main import main

ROOT = Path(__file__).resolve().parents[3]
GROUPS = [
    "demo",
    "torture",
    "bench",
    "replay",
    "import",
    "models",
    "policy",
    "evaluate-policy",
    "explain",
    "report",
    "campaigns",
    "catalog",
    "coupons",
    "schemas",
    "tombstones",
]


def test_help_lists_every_command_group_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    # When
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    # Then
    assert exit_.value.code == 0
    assert "{" + ",".join(GROUPS) + "}" in capsys.readouterr().out.replace("\n", "").replace(" ", "")


@pytest.mark.parametrize(
    "command",
    [[g] for g in GROUPS] + [["models", s] for s in ("train", "score", "evaluate", "export", "default")]
    + [["campaigns", "approve"], ["campaigns", "check"], ["tombstones", "migrate"]]
    + [["coupons", s] for s in ("upload", "left", "holder", "verify")]
    + [["policy", s] for s in ("learn", "evaluate", "apply")],
)  # fmt: skip
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # When
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    # Then
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: nextbest {' '.join(command)} ")


def test_campaigns_check_lists_the_repository_campaigns(capsys: pytest.CaptureFixture[str]) -> None:
    # When
    code = main(["campaigns", "check"])
    # Then
    out = capsys.readouterr().out
    assert code == 0
    ids = {line.split()[0] for line in out.splitlines() if not line.startswith("policy:")}
    assert ids == {p.stem for p in (ROOT / "campaigns").glob("*.toml") if p.stem != "policy"}
    assert out.splitlines()[-1].startswith("policy: caps ")


def test_campaigns_check_reads_another_directory_and_names_event_date_and_catalog_triggers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["campaigns", "check", "--dir", str(ROOT / "docs" / "campaigns")])
    rows = {line.split()[0]: line.split()[1:3] for line in capsys.readouterr().out.splitlines()[:-1]}
    assert code == 0
    assert rows == {
        "back-in-stock": ["draft", "catalog:back_in_stock+0m"],
        "birthday": ["draft", "date:birthday:yearly+0d@09:00"],
        "price-drop": ["draft", "catalog:price_drop+30m"],
        "subscription-renewed": ["draft", "event:subscription.renewed+120m"],
    }


def test_help_imports_no_command_implementation() -> None:
    # Given a fresh interpreter
    code = (
        "import sys; from nextbest_cli.main import main\n"
        "try: main(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('boto3', 'numpy', 'jinja2', 'pydantic', 'rich', 'nextbest_lab') if m in sys.modules]\n"
        "print(heavy, file=sys.stderr)"
    )
    # When
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Then
    assert run.stderr.strip() == "[]"
