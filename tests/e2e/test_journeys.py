"""Decisioning through the whole emulated stack: holdouts, quiet hours, lapse checks with real models,
and the explanation an operator reads."""

from datetime import timedelta

from nextbest.aws.store.table import document
from nextbest_cli.explain import explain, from_table

from tests.conftest import T0
from tests.e2e.test_pipeline import event, put


def decisions(emulation) -> list[dict]:
    found = []
    for page in emulation.client("dynamodb").get_paginator("scan").paginate(TableName=emulation.output("TableName")):
        for item in page["Items"]:
            if item["sk"]["S"] == "DECISION":
                found.append(document(item) | {"status": item["status"]["S"]})
    return sorted(found, key=lambda d: d["decided_at"])


def test_a_customer_in_the_campaign_holdout_gets_a_would_have_sent_record_and_no_message(emulation):
    held = "cus_1"  # hashes into the cart campaign's 10% holdout (and not the global control group)
    put(
        emulation,
        event("cart.updated"),
        event("customer.identified", customer_id=held),
        event("consent.updated", customer_id=held),
    )
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=3))
    assert emulation.sent_emails() == []
    [decision] = decisions(emulation)
    assert (decision["action"], decision["group"], decision["status"]) == ("holdout", "holdout", "held_out")
    assert decision["campaign_id"] == "cart-abandonment" and decision["channel"] == "email"
    key, found = from_table(emulation.output("TableName"), held)
    text = explain(key, found)
    assert "HOLD OUT (holdout) — would have sent cart-abandonment" in text and "✓ cart-abandonment" in text


def test_a_text_due_at_night_waits_for_the_customers_morning(emulation):
    evening = T0 + timedelta(hours=12)  # 21:00 UTC, 22:00 in Paris: the reminder falls due at 23:00 there
    emulation.advance(evening)
    at = evening.isoformat()
    put(
        emulation,
        event("cart.updated", occurred_at=at),
        event("customer.identified", occurred_at=at, email=None),
        event("consent.updated", occurred_at=at, channel="sms"),
    )
    emulation.drain()
    emulation.advance(evening + timedelta(hours=9))  # 07:00 in Paris
    assert emulation.sent_sms() == []
    [deferred] = decisions(emulation)
    assert deferred["action"] == "defer" and deferred["defer_until"].startswith("2026-11-03T07:00")
    emulation.advance(evening + timedelta(hours=11))
    assert len(emulation.sent_sms()) == 1
    assert [d["action"] for d in decisions(emulation)] == ["defer", "send"]


def test_a_lapse_check_scores_a_lapsing_buyer_with_the_bundled_models_and_wins_them_back_without_a_sweep(emulation):
    orders = [T0 - timedelta(days=days) for days in (400, 330, 260, 190)]
    put(
        emulation,
        event("customer.identified", occurred_at=orders[0].isoformat()),
        event("consent.updated", occurred_at=orders[0].isoformat()),
        *[
            event("order.placed", event_id=f"ev-old-{i}", order_id=f"old-{i}", occurred_at=at.isoformat())
            for i, at in enumerate(orders)
        ],
    )
    emulation.drain()
    assert emulation.sent_emails() == []  # nothing before a poll: its only trigger is the lapse check
    emulation.advance(T0 + timedelta(days=1, hours=1))
    [decision] = [d for d in decisions(emulation) if d["trigger"] == "lapse"]
    assert decision["action"] == "send" and decision["campaign_id"] in ("at-risk", "win-back")
    assert decision["scores"]["lapse_risk"] > 0.6 and decision["model_versions"]  # scored by the shipped models
    assert len(emulation.sent_emails()) == 1
    emulation.advance(T0 + timedelta(days=3, hours=1))  # within the conflict group's 72 h: nothing more
    assert len(emulation.sent_emails()) == 1
    emulation.advance(T0 + timedelta(days=15))  # two more checks, a week apart: each campaign's cooldown holds
    checks = [d for d in decisions(emulation) if d["trigger"] == "lapse"]
    sent = [d["campaign_id"] for d in checks if d["action"] == "send"]
    assert len(checks) == 3 and sorted(sent) == ["at-risk", "win-back"]
