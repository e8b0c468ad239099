"""Example target policies for ``nextbest evaluate-policy`` (a policy is any ``record -> {action: probability}``).

New caps, new priorities or a new model are expressed as such functions and named on the command line as
``module:function``. They read what the logged decision recorded in its ``context`` — here the candidates'
expected values under ``context["scores"]`` (what the decision record lists per candidate) — and must only
choose among ``record.actions()`` (the candidates and ``"none"``).
"""

from __future__ import annotations

from nextbest_lab.ope import NONE, LoggedDecision


def uniform(record: LoggedDecision) -> dict[str, float]:
    """Send one of the candidates, each equally likely (the exploration baseline)."""
    return {a: 1 / len(record.candidates) for a in record.candidates} if record.candidates else {NONE: 1.0}


def never_send(record: LoggedDecision) -> dict[str, float]:
    """Send nothing: the value of silence, which every campaign should beat."""
    return {NONE: 1.0}


def highest_expected_value(record: LoggedDecision) -> dict[str, float]:
    """Send the candidate with the highest score in ``context["scores"]``, ties shared; nothing if none is
    positive (a message expected to earn nothing is not worth the customer's attention)."""
    scores = record.context.get("scores", {})
    scored = {a: float(scores[a]) for a in record.candidates if a in scores}
    best = max(scored.values(), default=0.0)
    if best <= 0:
        return {NONE: 1.0}
    winners = [a for a, s in scored.items() if s == best]
    return {a: 1 / len(winners) for a in winners}
