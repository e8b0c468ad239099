"""``nextbest policy learn | evaluate | apply`` on a log of the simulator's randomised decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nextbest_cli.main import main
from nextbest_lab.simulator import policy_world


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("logs")
    paths = folder / "train.jsonl", folder / "test.jsonl"
    for path, seed in zip(paths, (7, 8), strict=True):
        path.write_text("".join(r.model_dump_json() + "\n" for r in policy_world(4000, seed=seed).records))
    return paths


def test_learn_then_apply_writes_one_line_per_decision_with_the_floor_on_every_open_action(
    logs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = logs
    # When
    learn = ["policy", "learn", "--log", str(train), "--out", str(tmp_path / "p"), "--floor", "0.05"]
    assert main([*learn, "--send-window-hours", "3"]) == 0
    apply = ["policy", "apply", "--policy", str(tmp_path / "p"), "--log", str(test)]
    assert main([*apply, "--out", str(tmp_path / "greedy")]) == 0
    assert main([*apply, "--out", str(tmp_path / "a"), "--floor", "0.05"]) == 0
    # Then the command said what the gate decided and why, and the manifest keeps the evidence
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    gate = manifest["gate"]
    assert gate["reason"] in out.replace("\n", "")
    assert ("promoted: " in out) == gate["promoted"]
    assert manifest["training"]["log"]["name"] == "train.jsonl" and len(manifest["files"]) == 2
    spec = json.loads((tmp_path / "p" / "policy.json").read_text())
    assert (spec["floor"], spec["send_window_hours"]) == (0.05, 3.0)  # what decide reads when deployed
    # and every logged decision has its probabilities over its four actions, each at least the floor
    lines = [json.loads(line) for line in (tmp_path / "a").read_text().splitlines()]
    decisions = [json.loads(line)["decision_id"] for line in test.read_text().splitlines()]
    assert [line["decision_id"] for line in lines] == decisions
    for line in lines[:200]:
        probabilities = line["probabilities"]
        assert len(probabilities) == 4 and min(probabilities.values()) == pytest.approx(0.05)
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert probabilities[line["action"]] == pytest.approx(0.85)
    # and without --floor, the policy's own choice: the same action, alone, each open action listed
    greedy = [json.loads(line) for line in (tmp_path / "greedy").read_text().splitlines()]
    assert [line["action"] for line in greedy] == [line["action"] for line in lines]
    for line in greedy[:200]:
        assert len(line["probabilities"]) == 4 and line["probabilities"][line["action"]] == 1.0
        assert sum(line["probabilities"].values()) == 1.0


def test_evaluate_reports_dr_and_snipw_against_the_logging_policy_nothing_and_each_action(
    logs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = logs
    main(["policy", "learn", "--log", str(train), "--out", str(tmp_path / "p")])
    # When
    code = main(
        ["policy", "evaluate", "--log", str(test), "--policy", str(tmp_path / "p"), "--json", str(tmp_path / "e")]
    )
    # Then
    assert code == 0
    rows = json.loads((tmp_path / "e").read_text())["policies"]
    actions = ("cart-abandonment:reminder", "cart-abandonment:urgency", "win-back:default")
    expected = {"learned policy", "logging policy", "send nothing", *(f"{a} to everyone" for a in actions)}
    assert set(rows) == expected
    for name, row in rows.items():
        if name not in ("learned policy", "logging policy"):
            assert set(row) == {"dr", "snipw", "learned_minus_this_dr"}
            value, lower, upper = row["dr"]
            assert lower < value < upper
    # Sending nothing earns what shoppers buy anyway, less than any cart reminder for everyone in this shop
    assert rows["send nothing"]["dr"][0] < rows["cart-abandonment:reminder to everyone"]["dr"][0]
    assert "send nothing" in capsys.readouterr().out


def test_a_second_learn_that_does_not_win_leaves_the_live_policy_and_says_why(
    logs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a live policy, whatever was decided for the first one
    train, _ = logs
    live = tmp_path / "p"
    main(["policy", "learn", "--log", str(train), "--out", str(live)])
    manifest = json.loads((live / "manifest.json").read_text())
    manifest["gate"]["promoted"] = True  # pinned live by hand
    (live / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    # When the same log is learned from again: the same policy cannot beat itself
    main(["policy", "learn", "--log", str(train), "--out", str(live)])
    # Then
    out = capsys.readouterr().out.replace("\n", "")
    assert "does not beat the live policy" in out and f"the challenger is in {live / 'challenger'}" in out
    assert json.loads((live / "manifest.json").read_text()) == manifest
    assert not json.loads((live / "challenger" / "manifest.json").read_text())["gate"]["promoted"]
