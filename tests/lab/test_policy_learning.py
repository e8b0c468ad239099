"""The targeting policy learned from logs (``nextbest_lab.policy``): it finds whom a message moves when the signal
is there, falls back to the best single action when it is not, is stored as verified data, and the gate promotes a
policy that wins and refuses one that loses.

Data: the simulator's :func:`~nextbest_lab.simulator.policy_world` (heterogeneous true effects, known per decision)
and a randomised three-arm e-mail log built here (two e-mails and no e-mail, uniform) whose effects do not depend
on the customer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nextbest.decide.scoring import ModelError
from nextbest_lab import policy, simulator
from nextbest_lab.ope import LoggedDecision
from nextbest_lab.policies import highest_expected_value

N = 12_000


@pytest.fixture(scope="module")
def worlds() -> tuple[simulator.PolicyWorld, simulator.PolicyWorld]:
    return simulator.policy_world(N, seed=7), simulator.policy_world(N, seed=8)


@pytest.fixture(scope="module")
def learned(worlds) -> policy.Learned:
    return policy.learn(worlds[0].records)


def one_hot(log: policy.Log, action: str) -> np.ndarray:
    out = np.zeros(log.eligible.shape)
    out[:, log.actions.index(action)] = 1.0
    return out


def test_given_effects_that_differ_by_shopper_when_learned_then_it_beats_the_best_single_action_and_the_ranking(
    worlds, learned
):
    # Given a fresh log of the same shop (the truth of every decision known)
    _, test = worlds
    log = policy.Log.of(test.records)
    # When
    value = test.true_value(learned.probabilities(log), log.actions)
    # Then a policy more complex than one action for all was chosen, and it earns more than any single action for
    # everyone and than today's ranking by propensity x value
    singles = {a: test.true_value(one_hot(log, a), log.actions) for a in log.actions}
    ranking = np.array([[highest_expected_value(r).get(a, 0.0) for a in log.actions] for r in test.records])
    assert learned.selection["chosen"] != "best_single", learned.selection
    assert value > max(singles.values()) + 0.5, (value, singles)
    assert value > test.true_value(ranking, log.actions) + 1.0


def three_arm_email_log(n: int, seed: int, lift: dict[str, float]) -> list[LoggedDecision]:
    """A randomised e-mail test: two e-mails and none, one third each; the e-mails' effects (``lift``, extra
    conversion probability) are the same for every customer, whatever their (arbitrarily named) context."""
    rng = np.random.default_rng(seed)
    arms = ["mens e-mail", "womens e-mail", "none"]
    records = []
    for i in range(n):
        arm = arms[rng.integers(0, 3)]
        context = {
            "recency": int(rng.integers(1, 13)),
            "history $": round(float(rng.lognormal(5, 1)), 2),
            "zip_code": str(rng.choice(["Urban", "Surburban", "Rural"])),
            "newbie": bool(rng.random() < 0.5),
            "nested": {"channel": str(rng.choice(["Phone", "Web", "Multichannel"]))},
        }
        bought = rng.random() < 0.01 + lift.get(arm, 0.0)
        reward = round(float(rng.lognormal(4.5, 0.6)), 2) if bought else 0.0
        records.append(LoggedDecision(decision_id=f"e{seed}-{i}", context=context, candidates=arms[:2], action=arm,
                                      propensity=1 / 3, reward=reward))  # fmt: skip
    return records


def test_given_effects_that_do_not_depend_on_the_customer_then_the_policy_is_the_best_single_arm():
    # Given a small, noisy, homogeneous effect: the men's e-mail is the best arm for everyone
    records = three_arm_email_log(9000, seed=1, lift={"mens e-mail": 0.008, "womens e-mail": 0.003})
    # When
    found = policy.learn(records, "conversion")
    # Then the simplest policy is kept, and it sends the best arm to everyone (apart from the exploration floor)
    assert found.selection["chosen"] == "best_single", found.selection
    log = policy.Log.of(three_arm_email_log(500, seed=2, lift={}), "conversion")
    probs = found.probabilities(log)
    assert (probs.argmax(axis=1) == log.actions.index("mens e-mail")).all()
    assert probs.min() == pytest.approx(found.floor)
    assert probs.sum(axis=1) == pytest.approx(np.ones(len(probs)))


def test_given_a_message_that_only_costs_then_the_policy_sends_nothing():
    # Given e-mails that change nothing, each costing 0.5 (revenue units) to send
    records = three_arm_email_log(6000, seed=3, lift={})
    # When
    found = policy.learn(records, "revenue", send_cost=0.5)
    # Then
    log = policy.Log.of(records[:300], "revenue", 0.5)
    assert (found.probabilities(log).argmax(axis=1) == log.none).all()


def test_given_any_context_then_the_encoder_makes_numbers_of_it():
    # Given numbers, booleans, strings, nested keys, a missing value and a level never seen in training
    contexts = [{"a": float(i), "b": {"c": "x" if i % 2 else "y"}, "flag": i % 3 == 0} for i in range(40)]
    contexts[5] = {"b": {"c": "x"}}
    # When
    encoder = policy.Encoder.fit(contexts)
    x = encoder.transform([{"a": 39.0, "b": {"c": "z"}, "flag": True}, {}])
    # Then a is numeric (standardised, missing flagged), b.c and flag are categorical (one-hot, unseen → all 0)
    assert encoder.numeric == ["a"] and encoder.missing == ["a"]
    assert dict(encoder.categorical) == {"b.c": ["x", "y"], "flag": ["False", "True"]}
    assert x.shape == (2, len(encoder.names)) == (2, 6)
    assert x[0, 0] > 1.0 and x[1, 0] == 0.0 and x[1, 1] == 1.0
    assert x[0, 2:4].tolist() == [0.0, 0.0] and x[0, 5] == 1.0
    # and it survives its JSON form
    assert policy.Encoder.from_json(json.loads(json.dumps(encoder.to_json()))) == encoder


def test_given_a_saved_policy_then_loading_gives_the_same_choices_and_a_tampered_file_is_refused(
    worlds, learned, tmp_path: Path
):
    # Given
    policy.save(learned, tmp_path, training={"records": N}, gate={"promoted": True})
    log = policy.Log.of(worlds[1].records[:500])
    # When
    loaded = policy.load(tmp_path)
    # Then
    assert loaded.member.kind == learned.member.kind
    assert np.array_equal(loaded.probabilities(log), learned.probabilities(log))
    # When a byte of the arrays changes
    data = bytearray((tmp_path / policy.ARRAYS_FILE).read_bytes())
    data[-40] ^= 1
    (tmp_path / policy.ARRAYS_FILE).write_bytes(bytes(data))
    # Then
    with pytest.raises(ModelError, match="sha256"):
        policy.load(tmp_path)


def relabelled(records: list[LoggedDecision], swap: dict[str, str]) -> list[LoggedDecision]:
    """The same log with actions renamed: a log that tells the wrong story about what each message did."""
    return [r.model_copy(update={"action": swap.get(r.action, r.action)}) for r in records]


def test_the_gate_promotes_a_policy_that_wins_and_refuses_one_that_loses(worlds, tmp_path: Path):
    train, test = worlds
    live = tmp_path / "live"
    # When a policy is learned with no policy live yet, judged on a held-out log against the logging policy
    first = policy.learn_and_gate(train.records, live, holdout=test.records)
    # Then it wins (uniform random messaging earns far less) and goes live
    assert first.manifest["gate"]["promoted"], first.manifest["gate"]["reason"]
    assert first.live == live and policy.champion_in(live) is not None
    # When a challenger is learned from a log whose messages were mislabelled (win-back for the discount)
    swap = {"cart-abandonment:urgency": "win-back:default", "win-back:default": "cart-abandonment:urgency"}
    second = policy.learn_and_gate(relabelled(train.records, swap), live, holdout=test.records)
    # Then on the true held-out log it loses to the live policy: refused, written beside it, the champion unchanged
    gate = second.manifest["gate"]
    assert not gate["promoted"] and gate["champion"] == "live policy"
    assert gate["difference_dr"][0] < 0 and "does not beat the live policy" in gate["reason"]
    assert second.written_to == live / "challenger"
    assert json.loads((live / "manifest.json").read_text())["gate"] == first.manifest["gate"]


def test_the_gate_refuses_a_policy_that_beats_a_weak_champion_but_loses_to_one_message_for_everyone():
    # Given per-decision DR values where the challenger beats the champion (a uniform log's logging policy) clearly
    rng = np.random.default_rng(3)
    champion = rng.normal(1.0, 1.0, 5000)
    challenger = champion + 0.2 + rng.normal(0.0, 0.1, 5000)
    # When the best single action for everyone earns more than the challenger, or the challenger is that action
    for single, promoted in ((challenger + 0.05, False), (challenger, True)):
        verdict = policy.gate(
            challenger, champion, champion_name="logging policy", evidence="a log", single=("mens to everyone", single)
        )
        # Then it is refused when it loses to the single action (saying so), and promoted when it only matches it
        assert verdict["promoted"] is promoted, verdict["reason"]
        assert ("loses to mens to everyone" in verdict["reason"]) is not promoted
        assert verdict["best_single"]["name"] == "mens to everyone"


def test_a_policy_learned_to_be_one_action_for_everyone_compares_equal_to_that_action_explored_alike(worlds):
    # Given a log and the best single action for everyone on it, explored with a 5% floor
    log = policy.Log.of(worlds[0].records, "revenue", 0.0)
    gamma = policy.pseudo_outcomes(log, np.zeros((len(log.records), 1)), 2, 0)
    name, values = policy.best_single(log, gamma, 0.05)
    # Then it is the highest of the single actions, and a policy choosing it everywhere with the same floor has the
    # same DR value, record by record
    action = log.actions.index(name.removesuffix(" to everyone")) if name != "send nothing" else log.none
    scores = np.zeros(log.eligible.shape)
    scores[:, action] = 1.0
    same = (policy.choose(scores, log.eligible, np.ones(len(log.actions), dtype=bool), 0.05) * gamma).sum(axis=1)
    assert np.allclose(values, same)
    every = np.ones(len(log.actions), dtype=bool)
    explored = [
        (policy.choose(one, log.eligible, every, 0.05) * gamma).sum(axis=1) for one in policy.baselines(log).values()
    ]
    assert len(explored) > 2 and values.mean() == pytest.approx(max(v.mean() for v in explored))
