"""``nextbest policy promote | rollback``: a person moves the live pointer; decide ships what it points to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nextbest.decide import live
from nextbest.decide.scoring import ModelError
from nextbest_cli.main import main
from nextbest_lab import policy as lab


def save(directory: Path, uplift: float, promoted: bool) -> str:
    """A one-action policy, as learn writes it; returns its version."""
    arrays = {"coef": np.zeros((2, 0)), "intercept": np.array([uplift, 0.0])}
    learned = lab.Learned(
        lab.Encoder([], [], [], [], []), ["cart-abandonment", "none"], np.ones(2, dtype=bool),
        lab.Member("best_single", arrays), 0.01, "revenue", 0.0,
    )  # fmt: skip
    lab.save(learned, directory, training={"records": 0}, gate={"promoted": promoted})
    return lab.version_of(directory)


def test_promote_pins_the_refused_challenger_and_rollback_restores_the_champion(tmp_path, capsys):
    # Given a live policy (promoted by the gate) and a challenger the gate refused beside it
    out = tmp_path / "policy"
    champion = save(out, 1.0, promoted=True)
    challenger = save(out / "challenger", 2.0, promoted=False)
    # When a person pins the challenger
    assert main(["policy", "promote", "--policy-dir", str(out), "--by", "marketing-lead", "--note", "test"]) == 0
    # Then it is live (decide loads it), the champion is kept as previous, and the manifest says who did it
    assert live.LivePolicy.load(out).version == challenger
    assert lab.version_of(out / "previous") == champion
    pinned = json.loads((out / "manifest.json").read_text())["live"]
    assert (pinned["pinned_by"], pinned["action"], pinned["note"]) == ("marketing-lead", "promote", "test")
    assert f"version {challenger}" in capsys.readouterr().out
    # And the next learn gates against the pinned policy, not the logging policy
    assert lab.champion_in(out) is not None
    # When they roll back, the champion is live again; rolling back again returns to the challenger
    assert main(["policy", "rollback", "--policy-dir", str(out), "--by", "ops"]) == 0
    assert live.LivePolicy.load(out).version == champion and lab.version_of(out / "previous") == challenger
    assert json.loads((out / "manifest.json").read_text())["live"]["action"] == "rollback"
    main(["policy", "rollback", "--policy-dir", str(out), "--by", "ops"])
    assert live.LivePolicy.load(out).version == challenger


def test_promote_refuses_a_tampered_policy_and_leaves_the_live_one(tmp_path):
    out = tmp_path / "policy"
    champion = save(out, 1.0, promoted=True)
    save(tmp_path / "other", 2.0, promoted=False)
    with (tmp_path / "other" / "policy.npz").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ModelError, match="does not match"):
        lab.promote(out, tmp_path / "other", by="someone", at="2026-12-01T00:00:00Z")
    assert live.LivePolicy.load(out).version == champion and not (out / "previous").exists()


def test_rollback_without_a_previous_policy_is_refused(tmp_path):
    save(tmp_path / "policy", 1.0, promoted=True)
    with pytest.raises(ModelError, match="no previous policy"):
        lab.rollback(tmp_path / "policy", by="ops", at="2026-12-01T00:00:00Z")


def test_the_command_says_why_it_refuses_instead_of_a_traceback(tmp_path, capsys):
    save(tmp_path / "policy", 1.0, promoted=True)
    assert main(["policy", "rollback", "--policy-dir", str(tmp_path / "policy"), "--by", "ops"]) != 0
    assert "no previous policy to roll back to" in capsys.readouterr().err
