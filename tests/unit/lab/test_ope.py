"""Offline policy evaluation on logs where the truth is known: the estimators, their intervals, the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from nextbest_cli.main import main
from nextbest_lab import ope, policies
from nextbest_lab.ope import NONE, LoggedDecision

SEGMENTS = {"new": 0.5, "loyal": 0.3, "lapsing": 0.2}
ACTIONS = ["cart", "winback", "upsell"]
TRUE_RATE = {  # P(conversion | segment, action): what really happens
    "new": {"cart": 0.06, "winback": 0.02, "upsell": 0.03, NONE: 0.02},
    "loyal": {"cart": 0.08, "winback": 0.05, "upsell": 0.12, NONE: 0.06},
    "lapsing": {"cart": 0.03, "winback": 0.09, "upsell": 0.02, NONE: 0.01},
}
SCORES = {  # what the model believed when deciding: right for new and lapsing, wrong for loyal
    "new": {"cart": 0.05, "winback": 0.01, "upsell": 0.02},
    "loyal": {"cart": 0.10, "winback": 0.04, "upsell": 0.07},
    "lapsing": {"cart": 0.02, "winback": 0.07, "upsell": 0.01},
}
HOLDOUT, EPSILON = 0.1, 0.3


def logging_policy(segment: str) -> dict[str, float]:
    """Holdout 10%; otherwise epsilon-greedy on the scores: what the log was collected with."""
    best = max(SCORES[segment], key=SCORES[segment].__getitem__)
    probs = {a: (1 - HOLDOUT) * EPSILON / len(ACTIONS) for a in ACTIONS}
    probs[best] += (1 - HOLDOUT) * (1 - EPSILON)
    return probs | {NONE: HOLDOUT}


def true_value(policy: ope.Policy) -> float:
    """Exact value of a policy that depends on the segment only (it is called once per segment)."""
    total = 0.0
    for segment, share in SEGMENTS.items():
        record = _record(segment, "cart", 1.0, 0.0, "probe")
        total += share * sum(p * TRUE_RATE[segment][a] for a, p in policy(record).items())
    return total


def _record(segment: str, action: str, propensity: float, reward: float, decision_id: str) -> LoggedDecision:
    return LoggedDecision(
        decision_id=decision_id,
        context={"segment": segment, "scores": SCORES[segment]},
        candidates=ACTIONS,
        action=action,
        propensity=propensity,
        reward=reward,
    )


def synthetic_log(n: int, seed: int) -> list[LoggedDecision]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        segment = rng.choices(list(SEGMENTS), weights=list(SEGMENTS.values()))[0]
        probs = logging_policy(segment)
        action = rng.choices(list(probs), weights=list(probs.values()))[0]
        reward = float(rng.random() < TRUE_RATE[segment][action])
        records.append(_record(segment, action, probs[action], reward, f"d-{i}"))
    return records


@pytest.fixture(scope="module")
def log() -> list[LoggedDecision]:
    return synthetic_log(30_000, seed=1)


@pytest.mark.parametrize("policy", [policies.highest_expected_value, policies.uniform, policies.never_send])
def test_given_a_log_with_known_truth_when_another_policy_is_evaluated_then_every_interval_covers_it(log, policy):
    evaluation = ope.evaluate(log, policy, context_keys=["segment"])
    truth = true_value(policy)
    for name in ("ipw", "snipw", "dr"):
        e = evaluation.estimates[name]
        assert e.lower <= truth <= e.upper, (name, e, truth)
        assert e.value == pytest.approx(truth, rel=0.15), name


def test_given_a_reward_model_on_the_right_features_then_dr_is_no_less_precise_than_ipw(log):
    # DR's variance is IPW's on the model's residuals. With rare 0/1 rewards most of it is the coin flip
    # itself, which no model removes, so the gain is small here; it must not be a loss.
    evaluation = ope.evaluate(log, policies.uniform, context_keys=["segment"])
    assert evaluation.estimates["dr"].se < evaluation.estimates["ipw"].se


def test_given_rewards_with_a_large_predictable_part_then_dr_is_much_tighter_than_ipw(log):
    # Given revenue-like rewards: a per-segment baseline plus the conversion (what a basket value adds)
    baseline = {"new": 5.0, "loyal": 20.0, "lapsing": 1.0}
    shifted = [r.model_copy(update={"reward": r.reward + baseline[r.context["segment"]]}) for r in log]
    evaluation = ope.evaluate(shifted, policies.uniform, context_keys=["segment"])
    # Then DR keeps only the segments' real spread and the coin flips; IPW also reweights the baseline
    assert evaluation.estimates["dr"].se < 0.6 * evaluation.estimates["ipw"].se
    truth = true_value(policies.uniform) + sum(share * baseline[s] for s, share in SEGMENTS.items())
    assert evaluation.estimates["dr"].lower <= truth <= evaluation.estimates["dr"].upper


def test_given_the_true_reward_function_as_model_then_dr_is_tighter_still(log):
    def oracle(record: LoggedDecision) -> dict[str, float]:
        return TRUE_RATE[record.context["segment"]]

    evaluation = ope.evaluate(log, policies.highest_expected_value, oracle)
    truth = true_value(policies.highest_expected_value)
    assert evaluation.estimates["dm"].value == pytest.approx(truth, rel=0.02)
    assert evaluation.estimates["dr"].se < evaluation.estimates["ipw"].se


def test_given_the_logging_policy_as_target_then_estimates_are_the_on_policy_mean(log):
    evaluation = ope.evaluate(log, lambda r: logging_policy(r.context["segment"]))
    mean = float(np.mean([r.reward for r in log]))
    assert evaluation.estimates["ipw"].value == pytest.approx(mean)
    assert evaluation.estimates["snipw"].value == pytest.approx(mean)
    assert evaluation.logged_value.value == pytest.approx(mean)
    assert evaluation.mean_weight == pytest.approx(1.0)
    assert evaluation.effective_sample_size == pytest.approx(len(log))


def test_given_hand_computed_terms_then_the_estimators_match():
    # Given three records with weights 2, 0, 0.5 and rewards 1, 1, 4 and a model predicting 1 everywhere
    estimates = ope.estimate([1.0, 1.0, 4.0], [2.0, 0.0, 0.5], direct=[1.0, 1.0, 1.0], predicted=[1.0, 1.0, 1.0])
    assert estimates["ipw"].value == pytest.approx((2 + 0 + 2) / 3)
    assert estimates["snipw"].value == pytest.approx(4 / 2.5)
    assert estimates["dm"].value == pytest.approx(1.0)
    # DR: direct 1 each, corrections 2*(1-1), 0*(1-1), 0.5*(4-1)
    assert estimates["dr"].value == pytest.approx((1 + 1 + 2.5) / 3)


def test_given_many_resamples_then_bootstrap_and_normal_intervals_agree_on_a_well_behaved_log(log):
    normal = ope.evaluate(log, policies.uniform, context_keys=["segment"], seed=3)
    boot = ope.evaluate(log, policies.uniform, context_keys=["segment"], n_bootstrap=400, seed=3)
    assert boot.interval == "bootstrap"
    for name in ("ipw", "snipw", "dr"):
        assert boot.estimates[name].value == normal.estimates[name].value
        assert boot.estimates[name].se == pytest.approx(normal.estimates[name].se, rel=0.2), name


def test_given_a_policy_whose_probabilities_do_not_sum_to_one_then_evaluation_refuses(log):
    with pytest.raises(ValueError, match="sum to 1"):
        ope.evaluate(log[:10], lambda r: {"cart": 0.5})


def test_given_a_policy_choosing_an_unknown_action_then_evaluation_refuses(log):
    with pytest.raises(ValueError, match="not among its actions"):
        ope.evaluate(log[:10], lambda r: {"sms-blast": 1.0})


@pytest.mark.parametrize(
    ("change", "message"),
    [({"action": "coupon"}, "neither"), ({"propensity": 0.0}, "greater than 0"), ({"propensity": 1.5}, "less than")],
)
def test_given_an_impossible_log_line_then_it_is_rejected(change, message):
    line = {"decision_id": "d", "candidates": ["cart"], "action": "cart", "propensity": 0.5, "reward": 1} | change
    with pytest.raises(ValueError, match=message):
        LoggedDecision.model_validate(line)


def test_given_sparse_rewards_then_group_means_shrink_actions_towards_their_group():
    # Given two actions with 1 and 0 rewards out of 50 each: no evidence they differ
    records = [
        LoggedDecision(
            decision_id=f"{a}{i}", candidates=["a", "b"], action=a, propensity=0.5, reward=float(a == "a" and i == 0)
        )
        for a in ("a", "b")
        for i in range(50)
    ]
    model = ope.GroupMeans.fit(records)
    q = model(records[0])
    assert q["a"] == pytest.approx(q["b"], abs=0.005)
    assert q[NONE] == pytest.approx(0.01, abs=0.005)


def test_given_a_log_file_when_the_cli_evaluates_a_policy_module_then_it_writes_estimates(log, tmp_path, monkeypatch):
    # Given a JSON-lines log and a policy module of the user's own, next to it
    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in log[:20_000]))
    (tmp_path / "my_policies.py").write_text(
        "def cart_always(record):\n    return {'cart': 1.0}\n\n"
        "def rates(record):\n    return {'cart': 0.05, 'winback': 0.05, 'upsell': 0.05, 'none': 0.03}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "evaluation.json"
    # When
    code = main(["evaluate-policy", "--log", str(path), "--policy", "my_policies:cart_always", "--out", str(out)])
    # Then
    assert code == 0
    result = json.loads(out.read_text())
    truth = sum(share * TRUE_RATE[s]["cart"] for s, share in SEGMENTS.items())
    assert result["n"] == 20_000
    for name in ("ipw", "snipw", "dr"):
        assert result["estimates"][name]["lower"] <= truth <= result["estimates"][name]["upper"], name
    # And a reward model can be named the same way
    main(
        [
            "evaluate-policy",
            "--log",
            str(path),
            "--policy",
            "nextbest_lab.policies:never_send",
            "--reward-model",
            "my_policies:rates",
            "--bootstrap",
            "200",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert result["interval"] == "bootstrap"
    assert result["estimates"]["dm"]["value"] == pytest.approx(0.03)
    truth = sum(share * TRUE_RATE[s][NONE] for s, share in SEGMENTS.items())
    assert result["estimates"]["dr"]["lower"] <= truth <= result["estimates"]["dr"]["upper"]


def test_given_a_malformed_spec_then_load_callable_says_what_it_expects():
    with pytest.raises(ValueError, match="module:function"):
        ope.load_callable("nextbest_lab.policies")
    assert ope.load_callable("nextbest_lab.policies:uniform") is policies.uniform


def test_evaluation_is_serialisable(log):
    evaluation = ope.evaluate(log[:2000], policies.uniform)
    assert json.loads(json.dumps(evaluation.to_dict()))["n"] == 2000
    assert "dr" in evaluation.summary()


def test_given_recorded_decisions_then_only_their_randomised_choices_become_logged_rounds():
    variants = {"cart": ["reminder", "urgency"]}
    base = {"decision_id": "d1", "trigger": "cart_abandoned", "campaign_id": "cart", "channel": "email",
            "candidates": [{"campaign_id": "cart", "value": 2.5}, {"campaign_id": "browse", "value": 1.0}]}  # fmt: skip
    sent = ope.from_decision(base | {"action": "send", "variant": "urgency", "propensity": 0.4}, variants, 30.0)
    held = ope.from_decision(base | {"action": "holdout", "variant": "urgency", "propensity": 0.1}, variants, 0.0)
    assert sent is not None and held is not None
    assert (sent.action, sent.propensity, sent.reward) == ("cart:urgency", 0.4, 30.0)
    assert sent.candidates == ["cart:reminder", "cart:urgency"] and held.action == NONE
    assert sent.context["scores"] == {"cart:reminder": 2.5, "cart:urgency": 2.5}
    assert ope.from_decision(base | {"action": "none", "propensity": None}, variants, 0.0) is None
