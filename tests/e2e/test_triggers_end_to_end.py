"""Triggers a campaign file defines, through the whole emulated stack: a shop's own event on the bus and a customer's
birthday each become an e-mail sent by SES at the time the campaign says, and ``nextbest explain`` tells why.

The stack is synthesized with a campaign set of its own: the repository's policy and the two examples of
``docs/campaigns`` approved (the live set has neither: the demo's shop sends no custom events and no dates)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nextbest.aws.store.table import document
from nextbest.core import experiments
from nextbest.core.campaigns import load_campaigns, load_policy
from nextbest_cli.explain import explain, from_table

from tests.builders import examples_approved
from tests.conftest import T0
from tests.e2e.test_journeys import decisions
from tests.e2e.test_pipeline import event, put

BIRTHDAY = "date:birthday:yearly+0d@09:00"


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return examples_approved(tmp_path_factory.mktemp("campaigns"), "subscription-renewed.toml", "birthday.toml")


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory, campaigns: Path) -> Path:
    """This module's stack: the emulation fixture runs it instead of the repository's."""
    from infra.local import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out"), campaigns=campaigns)


def treated(campaigns: Path, campaign_id: str, prefix: str) -> str:
    """A customer id in neither the global control group nor the campaign's holdout: one who gets the message."""
    campaign = next(c for c in load_campaigns(campaigns) if c.id == campaign_id)
    control = load_policy(campaigns).global_control_percent
    return next(
        f"{prefix}{i}"
        for i in range(1000)
        if not experiments.in_global_control(f"c:{prefix}{i}", control)
        and not experiments.in_holdout(f"c:{prefix}{i}", campaign)
    )


def customer(name: str, email: str, at: datetime, **identified) -> list[dict]:
    """A customer identified with this address, who agreed to e-mail."""
    when = at.isoformat()
    ids = {"customer_id": name, "anonymous_id": None, "phone": None}
    return [
        event("customer.identified", event_id=f"id-{name}", occurred_at=when, email=email, **ids, **identified),
        event("consent.updated", event_id=f"ok-{name}", occurred_at=when, customer_id=name, email=email),
    ]


def renewed(name: str, at: datetime, **properties) -> dict:
    e = event("custom.event", event_id=f"renewed-{name}", occurred_at=at.isoformat(), customer_id=name)
    e["detail"]["properties"] = properties
    return e


def test_a_custom_event_on_the_bus_becomes_an_email_when_its_delay_has_passed_and_its_conditions_hold(
    emulation, campaigns
):
    annual = treated(campaigns, "subscription-renewed", "cus_annual_")
    monthly = treated(campaigns, "subscription-renewed", "cus_monthly_")
    put(
        emulation,
        *customer(annual, "ann@example.org", T0),
        *customer(monthly, "bob@example.org", T0),
        renewed(annual, T0, plan="annual", amount=120, gift=False),
        renewed(monthly, T0, plan="monthly", amount=12, gift=False),
    )
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=1, minutes=55))
    assert emulation.sent_emails() == []  # the campaign says two hours
    emulation.advance(T0 + timedelta(hours=2, minutes=5))
    [message] = emulation.sent_emails()
    assert "ann@example.org" in message.raw_data and "Thank you for staying with us" in message.raw_data
    assert "Your annual subscription has renewed" in message.raw_data  # the event's own property, in the creative
    made = {d["profile_key"]: d for d in decisions(emulation)}
    sent = made[f"c:{annual}"]
    assert (sent["action"], sent["campaign_id"], sent["status"]) == ("send", "subscription-renewed", "delivered")
    assert sent["trigger"] == "event:subscription.renewed+120m"
    assert T0 + timedelta(hours=2) <= datetime.fromisoformat(sent["decided_at"]) <= T0 + timedelta(hours=2, minutes=3)
    assert made[f"c:{monthly}"]["action"] == "none"

    key, found = from_table(emulation.output("TableName"), annual)
    story = explain(key, found)
    assert "event:subscription.renewed+120m" in story and "SEND subscription-renewed/thanks by email" in story
    assert "✓ subscription-renewed" in story
    key, found = from_table(emulation.output("TableName"), monthly)
    assert 'where: plan not in ["annual", "biennial"]' in explain(key, found)


def test_a_custom_event_no_campaign_answers_is_applied_but_not_remembered_and_a_malformed_one_is_dead_lettered(
    emulation,
):
    from tests.e2e.test_pipeline import dead_letters

    name = "cus_reviewer"
    review = event("custom.event", event_id="review-1", customer_id=name)
    broken = event("custom.event", event_id="review-2", customer_id=name)
    for e in (review, broken):
        e["detail"]["name"] = "review.posted"
    broken["detail"]["properties"] = {"stars": {"value": 5}}  # nested: refused
    put(emulation, review, broken)
    emulation.drain()
    item = emulation.client("dynamodb").get_item(
        TableName=emulation.output("TableName"), Key={"pk": {"S": f"c:{name}"}, "sk": {"S": "PROFILE"}}
    )["Item"]
    profile = document(item)
    assert profile.get("occurrences", {}) == {} and profile.get("triggers", {}) == {}
    [rejected] = [m for q, ms in dead_letters(emulation).items() if "Events" in q for m in ms]
    assert rejected["MessageAttributes"]["reason"]["StringValue"] == "invalid_detail"


def test_a_birthday_email_goes_at_nine_in_the_customers_own_zone_once_and_not_again_the_next_day(emulation, campaigns):
    name = treated(campaigns, "birthday", "cus_tokyo_")
    put(
        emulation,
        *customer(
            name, "kei@example.org", T0, first_name="Kei", time_zone="Asia/Tokyo", dates={"birthday": "1990-11-03"}
        ),
    )
    emulation.drain()
    nine_in_tokyo = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)  # 09:00 on 3 November in Tokyo (UTC+9)
    emulation.advance(nine_in_tokyo - timedelta(minutes=5))
    assert emulation.sent_emails() == []
    emulation.advance(nine_in_tokyo + timedelta(minutes=5))
    [message] = emulation.sent_emails()
    assert "kei@example.org" in message.raw_data and "Happy birthday, Kei!" in message.raw_data
    [sent] = decisions(emulation)
    assert (sent["trigger"], sent["action"], sent["campaign_id"]) == (BIRTHDAY, "send", "birthday")
    assert nine_in_tokyo <= datetime.fromisoformat(sent["decided_at"]) <= nine_in_tokyo + timedelta(minutes=3)

    # the next day, the customer browses: nothing more, and the birthday waits for next year
    view = event("product.viewed", event_id="view-next-day", anonymous_id=None, customer_id=name)
    view["detail"]["occurred_at"] = (nine_in_tokyo + timedelta(days=1)).isoformat()
    emulation.advance(nine_in_tokyo + timedelta(days=1))
    put(emulation, view)
    emulation.drain()
    emulation.advance(nine_in_tokyo + timedelta(days=2))
    assert len(emulation.sent_emails()) == 1 and len(decisions(emulation)) == 1
    item = emulation.client("dynamodb").get_item(
        TableName=emulation.output("TableName"), Key={"pk": {"S": f"c:{name}"}, "sk": {"S": "PROFILE"}}
    )["Item"]
    assert document(item)["triggers"][BIRTHDAY].startswith("2027-11-03T00:00")
    key, found = from_table(emulation.output("TableName"), name)
    assert f"{BIRTHDAY} (due 11-03 00:00)" in explain(key, found)


def test_ingest_learns_the_approved_triggers_and_the_policys_zone_from_the_synthesized_stack(emulation, campaigns):
    import json

    env = emulation.environment("ingest")
    delays = json.loads(env["TRIGGER_DELAY_SECONDS"])
    assert delays == {"event:subscription.renewed+120m": 7200, BIRTHDAY: 0}
    assert env["DEFAULT_TIME_ZONE"] == load_policy(campaigns).quiet_hours.default_time_zone == "America/New_York"
