"""Decide on the triggers campaign files define: conditions on the remembered event, a date's lateness, and the next
year's birthday armed by the decision itself (a dormant customer sends no event that would arm it)."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from nextbest.core.campaigns import load_campaigns, trigger_delays
from nextbest.core.commands import DueProfile
from nextbest.core.events import ConsentUpdated, CustomerIdentified, CustomEvent
from nextbest.decide.engine import decide, trigger_gone
from nextbest.decide.service import Decider
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import POLICY, Alarms, Collect

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "campaigns"
CAMPAIGNS = [c.model_copy(update={"status": "approved", "holdout_percent": 0.0}) for c in load_campaigns(EXAMPLES)]
DELAYS = trigger_delays(CAMPAIGNS, "America/New_York")
BIRTHDAY = "date:birthday:yearly+0d@09:00"
RENEWED = "event:subscription.renewed+120m"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _customer(store: MemoryStore, **identified) -> None:
    ingest(
        store,
        "customer.identified",
        CustomerIdentified(event_id="i", occurred_at=T0, customer_id="cus_1", email="kei@example.org", **identified),
        DELAYS,
    )
    consent = ConsentUpdated(event_id="k", occurred_at=T0, customer_id="cus_1", channel="email", granted=True)
    ingest(store, "consent.updated", consent, DELAYS)


def _decider(store: MemoryStore, queue: Collect) -> Decider:
    return Decider(
        store, {"email": queue, "sms": queue, "push": queue}, Collect(), Alarms(), CAMPAIGNS, POLICY, "https://s"
    )


def test_a_birthday_is_decided_once_and_the_decision_arms_next_years_without_any_event():
    store, queue = MemoryStore(), Collect()
    _customer(store, time_zone="Asia/Tokyo", dates={"birthday": date(1990, 11, 3)})
    due = datetime(2026, 11, 3, 0, tzinfo=UTC)  # 09:00 in Tokyo
    assert store.profiles["c:cus_1"].triggers == {BIRTHDAY: due}
    assert _decider(store, queue).due(DueProfile(profile_key="c:cus_1"), due - timedelta(minutes=5)) == []
    [decision] = _decider(store, queue).due(DueProfile(profile_key="c:cus_1"), due + timedelta(minutes=2))
    assert (decision.action, decision.campaign_id, decision.trigger_due_at) == ("send", "birthday", due)
    assert len(queue.sent) == 1
    profile = store.profiles["c:cus_1"]
    assert profile.triggers == {BIRTHDAY: datetime(2027, 11, 3, 0, tzinfo=UTC)} and profile.handled[BIRTHDAY] == due
    assert _decider(store, queue).due(DueProfile(profile_key="c:cus_1"), due + timedelta(days=1)) == []
    assert len(queue.sent) == 1


def test_a_customer_without_a_zone_gets_the_policys_default_zone_from_decide_too():
    store, queue = MemoryStore(), Collect()
    _customer(store, dates={"birthday": date(1990, 11, 3)})
    due = datetime(2026, 11, 3, 14, tzinfo=UTC)  # 09:00 in New York (EST)
    assert store.profiles["c:cus_1"].triggers == {BIRTHDAY: due}
    decider = _decider(store, queue)
    decider.policy = POLICY.model_copy(
        update={"quiet_hours": POLICY.quiet_hours.model_copy(update={"default_time_zone": "America/New_York"})}
    )
    decider.due(DueProfile(profile_key="c:cus_1"), due + timedelta(minutes=2))
    assert store.profiles["c:cus_1"].triggers == {BIRTHDAY: datetime(2027, 11, 3, 13, tzinfo=UTC)}  # EDT ends later


def test_a_date_trigger_more_than_half_a_day_late_is_not_sent_a_day_late():
    store = MemoryStore()
    _customer(store, dates={"birthday": date(1990, 11, 3)})
    profile = store.profiles["c:cus_1"]
    due = profile.triggers[BIRTHDAY]
    assert trigger_gone(profile, BIRTHDAY, due, due + timedelta(hours=1)) is None
    assert "a day late" in (trigger_gone(profile, BIRTHDAY, due, due + timedelta(hours=13)) or "")
    gone = profile.model_copy(update={"dates": {}})
    assert trigger_gone(gone, BIRTHDAY, due, due) == "no birthday date on the profile"


def test_a_campaign_whose_conditions_fail_is_eliminated_and_says_which():
    store = MemoryStore()
    _customer(store)
    renewal = CustomEvent(
        event_id="r", occurred_at=T0, customer_id="cus_1", name="subscription.renewed",
        properties={"plan": "annual", "amount": 80, "gift": False},
    )  # fmt: skip
    ingest(store, "custom.event", renewal, DELAYS)
    profile = store.profiles["c:cus_1"]
    due = T0 + timedelta(hours=2)
    assert profile.triggers == {RENEWED: due}
    decision = decide(profile, RENEWED, due, CAMPAIGNS, POLICY, due, "https://s")
    [candidate] = decision.candidates
    assert decision.action == "none" and candidate.reason == "where: amount not >= 100"
    richer = profile.model_copy(deep=True)
    richer.occurrences["subscription.renewed"].properties["amount"] = 100
    sent = decide(richer, RENEWED, due, CAMPAIGNS, POLICY, due, "https://s")
    assert sent.action == "send" and sent.messages["email"].text.startswith("Your annual subscription has renewed")


def test_a_property_the_event_did_not_carry_renders_as_nothing_and_other_campaigns_see_no_event():
    from jinja2.sandbox import SandboxedEnvironment
    from nextbest.core.messages import event_properties

    template = SandboxedEnvironment().from_string("[{{ event.plan }}|{{ event.coupon }}|{{ event.seats }}]")
    assert template.render(event=event_properties({"plan": "annual", "coupon": None, "seats": 3})) == "[annual||3]"
    assert template.render(event=event_properties({})) == "[||]"
