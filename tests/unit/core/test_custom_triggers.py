"""Triggers a campaign file defines: on a shop's own event (``custom.event``) and on a customer's dates — the contract,
the campaign syntax and its errors, the predicates, the calendar, and what the profile keeps."""

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from nextbest.core.campaigns import CampaignError, DateTrigger, EventTrigger, Where, load_campaigns, trigger_delays
from nextbest.core.events import CustomerIdentified, CustomEvent, ProductViewed, RejectedEvent, parse_event
from nextbest.core.profiles import MAX_OCCURRENCES, TriggerDelays, apply, merge, new_profile
from nextbest.core.triggers import DateSpec, EventSpec

from tests.builders import example_edited
from tests.conftest import sample

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "campaigns"
RENEWED = "event:subscription.renewed+120m"
BIRTHDAY = "date:birthday:yearly+0d@09:00"


def _custom(**detail) -> str:
    event = sample("custom.event.json")
    event["detail"].update(detail)
    return json.dumps(event)


def _rejected(body: str) -> RejectedEvent:
    with pytest.raises(RejectedEvent) as caught:
        parse_event(body, NOW)
    return caught.value


def test_a_custom_event_carries_a_name_and_flat_properties():
    kind, detail = parse_event(_custom(), NOW)
    assert kind == "custom.event" and isinstance(detail, CustomEvent)
    assert detail.name == "subscription.renewed" and detail.properties["plan"] == "annual"


@pytest.mark.parametrize(
    "detail",
    [
        {"name": "Subscription Renewed"},  # not lower-case words joined by dots
        {"name": "subscription..renewed"},
        {"properties": {"plan": {"tier": "gold"}}},  # nested: flat only
        {"properties": {"plan": ["annual"]}},
        {"properties": {"note": "x" * 257}},  # a string too long
        {"properties": {f"k{i}": i for i in range(21)}},  # too many properties
        {"properties": {f"k{i}": "v" * 200 for i in range(6)}},  # more than 1 KB of JSON
    ],
)
def test_an_invalid_custom_event_is_rejected_with_a_reason(detail):
    assert _rejected(_custom(**detail)).reason == "invalid_detail"


def test_a_rejection_never_repeats_a_property_name_the_producer_chose():
    rejection = _rejected(_custom(properties={"ann@example.org": 1}))
    assert rejection.reason == "invalid_detail" and "ann@example.org" not in rejection.message
    assert "properties" in rejection.message


def test_dates_arrive_on_customer_identified_and_are_validated():
    event = sample("customer.identified.json")
    event["detail"]["dates"] = {"birthday": "1990-05-17"}
    _, detail = parse_event(json.dumps(event), NOW)
    assert isinstance(detail, CustomerIdentified) and detail.dates == {"birthday": date(1990, 5, 17)}
    event["detail"]["dates"] = {"birthday": "17/05/1990"}
    assert _rejected(json.dumps(event)).reason == "invalid_detail"


# --- campaign files -------------------------------------------------------------------------------------------------


def test_the_example_campaigns_load_and_name_their_triggers():
    found = {c.id: c for c in load_campaigns(EXAMPLES)}
    assert found["subscription-renewed"].triggers == [RENEWED]
    assert found["birthday"].triggers == [BIRTHDAY]
    assert all(c.status == "draft" for c in found.values())  # examples: nothing in docs/ is live


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('{ property = "amount", gte = 100 }', '{ property = "amount", gte = "100" }', r"trigger\.where\.1\.gte"),
        ('{ property = "amount", gte = 100 }', '{ property = "amount", contains = 1 }', r"trigger\.where\.1\.contains"),
        (
            '{ property = "amount", gte = 100 }',
            '{ property = "amount", gt = 1, lt = 5 }',
            r"trigger\.where\.1:.*one of",
        ),
        ('{ property = "amount", gte = 100 }', '{ property = "amount" }', r"trigger\.where\.1:.*one of"),
        ('{ property = "amount", gte = 100 }', '{ property = "a b", exists = true }', r"trigger\.where\.1\.property"),
        ('delay = "2h"', 'delay = "2 hours"', r"trigger\.delay"),
        ('delay = "2h"', 'delay = "31d"', r"trigger\.delay.*30 days"),
        ('event = "subscription.renewed"', 'event = "order.placed"', r"trigger\.event.*built-in"),
        ('event = "subscription.renewed"', 'event = "Renewed!"', r"trigger\.event"),
    ],
)
def test_a_broken_event_trigger_names_the_file_and_the_field(tmp_path, old, new, field):
    with pytest.raises(CampaignError, match=rf"subscription-renewed\.toml: .*{field}"):
        load_campaigns(example_edited(tmp_path, "subscription-renewed.toml", old, new))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('local_time = "09:00"', 'local_time = "9am"', r"trigger\.local_time"),
        ("every_year = true", "every_year = true\ndays_before = 2\ndays_after = 3", r"trigger:.*not both"),
        ('date = "birthday"', 'date = "Birth Day"', r"trigger\.date"),
        ("every_year = true", "every_yeer = true", r"trigger\.every_yeer"),
    ],
)
def test_a_broken_date_trigger_names_the_file_and_the_field(tmp_path, old, new, field):
    with pytest.raises(CampaignError, match=rf"birthday\.toml: .*{field}"):
        load_campaigns(example_edited(tmp_path, "birthday.toml", old, new))


def test_an_approval_covers_the_conditions_of_a_trigger(tmp_path):
    [before] = load_campaigns(example_edited(tmp_path, "subscription-renewed.toml", "gte = 100", "gte = 100"))
    [after] = load_campaigns(example_edited(tmp_path, "subscription-renewed.toml", "gte = 100", "gte = 10"))
    assert before.digest() != after.digest()


def test_only_approved_campaigns_arm_their_triggers_with_their_own_delay_and_the_policy_zone(tmp_path):
    campaigns = [c.model_copy(update={"status": "approved"}) for c in load_campaigns(EXAMPLES)]
    delays = trigger_delays([c for c in campaigns if c.trigger.kind in ("event", "date")], "America/New_York")
    assert dict(delays) == {RENEWED: timedelta(hours=2), BIRTHDAY: timedelta(0)}
    assert delays.time_zone == "America/New_York"
    assert trigger_delays(load_campaigns(EXAMPLES)) == {}  # drafts arm nothing


# --- predicates -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "properties", "met"),
    [
        ({"equals": "annual"}, {"p": "annual"}, True),
        ({"equals": "annual"}, {"p": "Annual"}, False),
        ({"equals": 1}, {"p": "1"}, False),  # a string is not a number
        ({"equals": 1}, {"p": True}, False),  # true is not 1
        ({"equals": True}, {"p": 1}, False),
        ({"equals": 2}, {"p": 2.0}, True),
        ({"in": ["a", "b"]}, {"p": "b"}, True),
        ({"in": ["a", "b"]}, {}, False),
        ({"gt": 100}, {"p": 100}, False),
        ({"gte": 100}, {"p": 100}, True),
        ({"lt": 5}, {"p": 4.5}, True),
        ({"lte": 5}, {"p": "4"}, False),  # strings never compare
        ({"gte": 0}, {"p": True}, False),  # nor flags
        ({"exists": True}, {"p": None}, False),  # null does not exist
        ({"exists": False}, {"p": None}, True),
        ({"exists": True}, {"p": False}, True),
    ],
)
def test_conditions_compare_strictly(condition, properties, met):
    where = Where.model_validate({"property": "p", **condition})
    assert (where.unmet(properties) is None) is met


def test_a_failed_condition_names_the_condition_and_not_the_customers_value():
    trigger = EventTrigger.model_validate(
        {"event": "subscription.renewed", "where": [{"property": "plan", "in": ["annual"]}, {"property": "x", "gt": 1}]}
    )
    assert trigger.unmet({"plan": "monthly-secret", "x": 5}) == 'where: plan not in ["annual"]'
    assert trigger.unmet({"plan": "annual", "x": 0}) == "where: x not > 1"
    assert trigger.unmet({"plan": "annual", "x": 2}) is None


# --- the calendar ---------------------------------------------------------------------------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")


def test_a_yearly_date_falls_at_the_local_time_of_the_next_anniversary():
    spec = DateSpec("birthday", True, 0, time(9))
    due = spec.next_due(date(1990, 11, 3), TOKYO, NOW)
    assert due == datetime(2026, 11, 3, 9, tzinfo=TOKYO) == datetime(2026, 11, 3, 0, tzinfo=UTC)
    assert spec.next_due(date(1990, 11, 3), TOKYO, due) == datetime(2027, 11, 3, 9, tzinfo=TOKYO)  # once a year


def test_the_local_time_follows_daylight_saving():
    spec = DateSpec("birthday", True, 0, time(9))
    summer = spec.next_due(date(1980, 7, 1), NEW_YORK, NOW)
    winter = spec.next_due(date(1980, 1, 15), NEW_YORK, NOW)
    assert summer is not None and winter is not None
    assert (summer.astimezone(UTC).hour, winter.astimezone(UTC).hour) == (13, 14)


def test_29_february_is_celebrated_on_the_28th_in_a_common_year():
    spec = DateSpec("birthday", True, 0, time(9))
    assert spec.next_due(date(2000, 2, 29), ZoneInfo("UTC"), NOW) == datetime(2027, 2, 28, 9, tzinfo=UTC)
    assert spec.next_due(date(2000, 2, 29), ZoneInfo("UTC"), datetime(2028, 1, 1, tzinfo=UTC)) == datetime(
        2028, 2, 29, 9, tzinfo=UTC
    )


def test_an_offset_counts_days_before_or_after_and_a_one_off_passes_once():
    before = DateTrigger(date="contract_ends", days_before=30).spec
    assert before.key == "date:contract_ends:once-30d@09:00"
    assert DateSpec.parse(before.key) == before
    assert before.next_due(date(2027, 1, 31), ZoneInfo("UTC"), NOW) == datetime(2027, 1, 1, 9, tzinfo=UTC)
    assert before.next_due(date(2026, 11, 1), ZoneInfo("UTC"), NOW) is None  # already past: never
    year_end = DateSpec("signed_up", True, 3, time(8, 30))
    assert year_end.next_due(date(2020, 12, 30), ZoneInfo("UTC"), NOW) == datetime(2027, 1, 2, 8, 30, tzinfo=UTC)
    assert EventSpec.parse(RENEWED) == EventSpec("subscription.renewed", timedelta(hours=2))


# --- the profile ----------------------------------------------------------------------------------------------------


def _renewed(event_id: str, at: datetime, name: str = "subscription.renewed", **properties) -> CustomEvent:
    return CustomEvent(event_id=event_id, occurred_at=at, customer_id="cus_1", name=name, properties=properties)


DELAYS = TriggerDelays({RENEWED: timedelta(hours=2), BIRTHDAY: timedelta(0)}, time_zone="America/New_York")


def test_a_watched_event_is_remembered_and_arms_its_trigger_and_an_unwatched_one_is_not_kept():
    p = apply(new_profile(["c:cus_1"]), "custom.event", _renewed("r1", NOW, plan="annual"), DELAYS)
    assert p.occurrences["subscription.renewed"].properties == {"plan": "annual"}
    assert p.triggers == {RENEWED: NOW + timedelta(hours=2)}
    p = apply(p, "custom.event", _renewed("x1", NOW, name="review.posted", stars=5), DELAYS)
    assert set(p.occurrences) == {"subscription.renewed"} and p.last_event_at == NOW


def test_the_latest_occurrence_wins_whatever_order_they_arrive_in():
    early, late = _renewed("r1", NOW, plan="monthly"), _renewed("r2", NOW + timedelta(hours=1), plan="annual")
    one = apply(apply(new_profile(["c:cus_1"]), "custom.event", late, DELAYS), "custom.event", early, DELAYS)
    two = apply(apply(new_profile(["c:cus_1"]), "custom.event", early, DELAYS), "custom.event", late, DELAYS)
    assert one.occurrences == two.occurrences and one.occurrences["subscription.renewed"].event_id == "r2"
    assert one.triggers[RENEWED] == NOW + timedelta(hours=3)


def test_remembered_events_are_bounded():
    names = [f"thing{i}.happened" for i in range(MAX_OCCURRENCES + 5)]
    delays = TriggerDelays({f"event:{n}+0m": timedelta(0) for n in names})
    p = new_profile(["c:cus_1"])
    for i, name in enumerate(names):
        p = apply(p, "custom.event", _renewed(f"e{i}", NOW + timedelta(minutes=i), name=name, v="x" * 200), delays)
    assert len(p.occurrences) == MAX_OCCURRENCES and set(p.occurrences) == set(names[-MAX_OCCURRENCES:])


def _identified(event_id: str, at: datetime, zone: str | None = None, **dates: date) -> CustomerIdentified:
    return CustomerIdentified(event_id=event_id, occurred_at=at, customer_id="cus_1", time_zone=zone, dates=dates)


def test_a_birthday_is_armed_at_the_customers_local_morning_or_the_policy_zones():
    tokyo = apply(
        new_profile(["c:cus_1"]),
        "customer.identified",
        _identified("i", NOW, "Asia/Tokyo", birthday=date(1990, 11, 3)),
        DELAYS,
    )
    assert tokyo.triggers[BIRTHDAY] == datetime(2026, 11, 3, 9, tzinfo=TOKYO)
    nowhere = apply(
        new_profile(["c:cus_1"]), "customer.identified", _identified("i", NOW, birthday=date(1990, 11, 3)), DELAYS
    )
    assert nowhere.triggers[BIRTHDAY] == datetime(2026, 11, 3, 9, tzinfo=NEW_YORK)


def test_an_event_just_after_the_due_time_keeps_the_birthday_and_a_decided_one_moves_to_next_year():
    p = apply(
        new_profile(["c:cus_1"]),
        "customer.identified",
        _identified("i", NOW, "Asia/Tokyo", birthday=date(1990, 11, 3)),
        DELAYS,
    )
    due = p.triggers[BIRTHDAY]
    view = ProductViewed(event_id="v", occurred_at=due + timedelta(minutes=1), customer_id="cus_1", product_id="sku-1")
    assert apply(p, "product.viewed", view, DELAYS).triggers[BIRTHDAY] == due  # the poll has not come yet
    p.handled[BIRTHDAY] = due
    assert apply(p, "product.viewed", view, DELAYS).triggers[BIRTHDAY] == datetime(2027, 11, 3, 9, tzinfo=TOKYO)


def test_a_date_learnt_long_after_its_day_waits_for_the_next_year():
    learnt = datetime(2026, 11, 4, 12, tzinfo=UTC)  # the day after, Tokyo's afternoon
    p = apply(
        new_profile(["c:cus_1"]),
        "customer.identified",
        _identified("i", learnt, "Asia/Tokyo", birthday=date(1990, 11, 3)),
        DELAYS,
    )
    assert p.triggers[BIRTHDAY] == datetime(2027, 11, 3, 9, tzinfo=TOKYO)


def test_merging_keeps_the_newest_date_and_the_latest_occurrence_in_either_order():
    a = apply(
        new_profile(["c:cus_1"]), "customer.identified", _identified("i1", NOW, birthday=date(1990, 1, 1)), DELAYS
    )
    a = apply(a, "custom.event", _renewed("r1", NOW, plan="monthly"), DELAYS)
    b = apply(
        new_profile(["a:anon"]),
        "customer.identified",
        _identified("i2", NOW + timedelta(hours=1), birthday=date(1990, 11, 3)),
        DELAYS,
    )
    b = apply(b, "custom.event", _renewed("r2", NOW + timedelta(hours=1), plan="annual"), DELAYS)
    ab, ba = merge(a, b, DELAYS), merge(b, a, DELAYS)
    assert ab.dates == ba.dates == {"birthday": date(1990, 11, 3)}
    assert ab.occurrences == ba.occurrences and ab.occurrences["subscription.renewed"].event_id == "r2"
    assert ab.triggers == ba.triggers and ab.triggers[BIRTHDAY] == datetime(2026, 11, 3, 9, tzinfo=NEW_YORK)


def test_the_readmes_trigger_examples_are_valid_triggers():
    import re
    import tomllib

    from nextbest.core.campaigns import Campaign

    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[trigger]" in b]
    assert len(blocks) == 3
    base = tomllib.loads((EXAMPLES / "birthday.toml").read_text())
    keys = {Campaign.model_validate(base | tomllib.loads(block)).trigger.key for block in blocks}
    assert keys == {"event:subscription.renewed+120m", "date:birthday:yearly+0d@09:00", "catalog:price_drop+30m"}


def test_imported_history_re_arms_a_past_birthday_for_its_next_occurrence_instead_of_dropping_it():
    from nextbest.core.profiles import settle

    old = datetime(2024, 3, 1, tzinfo=UTC)  # imported history: the customer's events are old
    p = apply(
        new_profile(["c:cus_1"]),
        "customer.identified",
        _identified("i", old, "Asia/Tokyo", birthday=date(1990, 3, 2)),
        DELAYS,
    )
    assert p.triggers[BIRTHDAY] == datetime(2024, 3, 2, 9, tzinfo=TOKYO)  # due long ago, relative to its event
    settled = settle(p, NOW, DELAYS)
    assert settled.triggers[BIRTHDAY] == datetime(2027, 3, 2, 9, tzinfo=TOKYO)
    assert settled.handled[BIRTHDAY] == datetime(2024, 3, 2, 9, tzinfo=TOKYO)
