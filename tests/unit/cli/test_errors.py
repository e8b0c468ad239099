"""A failed command is one line on stderr (what, where, how to fix) and exit 2; its traceback only with --debug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nextbest.memory import MemoryStore
from nextbest_cli.main import main

from tests.builders import abandoned_cart

ROOT = Path(__file__).resolve().parents[3]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = err.splitlines()
    return line


@pytest.fixture
def bad_amount(tmp_path: Path) -> Path:
    orders = tmp_path / "orders.csv"
    orders.write_text('customer_id,timestamp,amount\ncus_1,2026-10-01,12.50\ncus_2,2026-10-02,"12,50"\n')
    return orders


def test_a_bad_csv_amount_names_the_file_the_line_and_what_it_should_be(bad_amount, tmp_path, capsys):
    # When a transactions file has an amount written with a decimal comma on its third line
    code = main(["models", "train", "--transactions", str(bad_amount), "--as-of", "2026-11-01", "--out", "m"])
    # Then one line names the command, the file, the line and the value, and says what is expected
    line = one_line(capsys)
    assert code == 2
    assert line.startswith("nextbest models: ")
    assert f"{bad_amount}, line 3: amount '12,50' is not a decimal number like 12.50" in line
    assert not (tmp_path / "m").exists()


def test_debug_shows_the_traceback_instead(bad_amount):
    # When the same command runs with the global --debug, then the error propagates with its traceback
    with pytest.raises(ValueError, match="line 3: amount"):
        main(["--debug", "models", "train", "--transactions", str(bad_amount), "--as-of", "2026-11-01", "--out", "m"])


def test_a_missing_file_is_named(tmp_path, capsys):
    code = main(["explain", "cus_1", "--log", str(tmp_path / "decisions.jsonl")])
    assert code == 2
    assert f"no such file: {tmp_path / 'decisions.jsonl'}" in one_line(capsys)


def test_evaluate_policy_given_the_decision_log_says_which_log_it_reads(tmp_path, capsys):
    # Given the demo's decision log, passed where the offline-evaluation log is expected
    decision = abandoned_cart(MemoryStore(), {"email": True}, email="ann@example.org")
    log = tmp_path / "decisions.jsonl"
    log.write_text(decision.model_dump_json() + "\n")
    # When
    code = main(["evaluate-policy", "--log", str(log), "--policy", "nextbest_lab.policies:never_send"])
    # Then the line names the file and line, and the file to use instead
    line = one_line(capsys)
    assert code == 2
    assert f"{log}, line 1: not a logged decision" in line and ".nextbest/demo/logged.jsonl" in line


def test_an_unexpected_error_is_still_one_line_with_its_kind(monkeypatch, capsys):
    # Given a command failing in a way nobody foresaw
    from nextbest_cli.commands import schemas

    def crash(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(schemas, "run", crash)
    # When, then: its kind and message on one line, and how to see where
    assert main(["schemas"]) == 2
    assert (
        one_line(capsys)
        == "nextbest schemas: ZeroDivisionError: division by zero (nextbest --debug … shows where it happened)"
    )


def test_report_writes_under_dot_nextbest_never_the_working_directory(tmp_path, monkeypatch, capsys):
    # Given a counters snapshot, run from a checkout's root
    monkeypatch.chdir(tmp_path)
    (tmp_path / "counters.json").write_text("[]\n")
    # When
    code = main(["report", "--snapshot", "counters.json", "--campaigns", str(ROOT / "campaigns")])
    # Then the report is in .nextbest/, and the working directory holds nothing new
    assert code == 0
    assert (tmp_path / ".nextbest" / "report.html").read_text().startswith("<!")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".nextbest", "counters.json"]


def test_explain_finds_a_demo_customer_by_email_or_phone(tmp_path, capsys):
    # Given a decision log and the identity links the demo writes beside it
    decision = abandoned_cart(MemoryStore(), {"email": True}, email="ann@example.org")
    log = tmp_path / "decisions.jsonl"
    log.write_text(json.dumps(json.loads(decision.model_dump_json())) + "\n")
    links = {"e:ann@example.org": "c:cus_1", "p:+14155550100": "c:cus_1"}
    (tmp_path / "identities.json").write_text(json.dumps(links))
    for who in ("Ann@Example.org", "+14155550100", "cus_1"):
        # When the customer is named by any of their identifiers
        code = main(["explain", who, "--log", str(log)])
        # Then their decision is told
        out = capsys.readouterr().out
        assert code == 0
        assert out.startswith("c:cus_1: 1 decision") and decision.decision_id in out


def test_an_import_without_files_or_of_an_unknown_format_says_what_to_give(tmp_path, capsys):
    base = ["import", "--table", "t", "--secret", "s", "--state", str(tmp_path / "state")]
    assert main(base) == 2
    assert "--customers" in one_line(capsys)
    sheet = tmp_path / "customers.xlsx"
    sheet.write_text("x")
    assert main([*base, "--customers", str(sheet)]) == 2
    line = one_line(capsys)
    assert ".csv" in line and "customers.xlsx" in line
