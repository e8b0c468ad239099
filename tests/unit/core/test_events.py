"""The event contract: valid samples pass, every kind of bad input is rejected with a reason."""

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nextbest.core.events import DETAIL_TYPES, Identifiers, RejectedEvent, parse_event
from pydantic import ValidationError

from tests.conftest import EVENTS, sample

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.stem)
def test_given_a_sample_event_when_parsed_then_it_is_valid(path):
    kind, detail = parse_event(path.read_text(), NOW)
    assert kind == path.stem
    assert detail.event_id


def test_every_detail_type_has_a_sample():
    assert {p.stem for p in EVENTS.glob("*.json")} == set(DETAIL_TYPES)


def _body(event):
    return json.dumps(event)


def _rejection(body: str) -> str:
    with pytest.raises(RejectedEvent) as caught:
        parse_event(body, NOW)
    return caught.value.reason


def test_given_broken_json_then_the_reason_is_bad_json():
    assert _rejection("{not json") == "bad_json"


def test_given_an_unknown_detail_type_then_it_is_named():
    event = sample("cart.updated.json") | {"detail-type": "cart.exploded"}
    assert _rejection(_body(event)) == "unknown_detail_type"


def test_given_no_identifier_then_the_reason_is_missing_identifiers():
    event = sample("product.viewed.json")
    del event["detail"]["anonymous_id"]
    assert _rejection(_body(event)) == "missing_identifiers"


def test_given_a_wrong_type_then_the_reason_is_invalid_detail_and_no_value_leaks():
    event = sample("customer.identified.json")
    event["detail"]["phone"] = "call me maybe"
    with pytest.raises(RejectedEvent) as caught:
        parse_event(_body(event), NOW)
    assert caught.value.reason == "invalid_detail"
    assert "phone" in caught.value.message and "call me maybe" not in caught.value.message


def test_given_a_timestamp_far_in_the_future_then_it_is_rejected():
    event = sample("product.viewed.json")
    event["detail"]["occurred_at"] = (NOW + timedelta(days=1)).isoformat()
    assert _rejection(_body(event)) == "future_timestamp"


def test_given_an_oversized_event_then_it_is_rejected_before_parsing():
    event = sample("product.viewed.json")
    event["detail"]["category"] = "x" * 100_000
    assert _rejection(_body(event)) == "oversized"


def test_given_an_unexpected_field_then_it_is_rejected_not_silently_dropped():
    event = sample("order.placed.json")
    event["detail"]["gift_wrap"] = True
    assert _rejection(_body(event)) == "invalid_detail"


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([{"product_id": "sku 1"}], "items.0.product_id"),  # not an id
        ([{"name": "Serum"}], "items.0"),  # a line without its product, or with a field a wishlist has not
        ([{"product_id": f"sku-{n}"} for n in range(101)], "items"),  # more than a wishlist holds
        (None, "items"),
    ],
)
def test_given_a_broken_wishlist_then_it_is_rejected_naming_the_field(items, field):
    event = sample("wishlist.updated.json")
    event["detail"]["items"] = items
    with pytest.raises(RejectedEvent) as caught:
        parse_event(_body(event), NOW)
    assert caught.value.reason == "invalid_detail" and field in caught.value.message


def test_an_emptied_wishlist_is_a_wishlist():
    event = sample("wishlist.updated.json")
    event["detail"]["items"] = []
    assert parse_event(_body(event), NOW)[0] == "wishlist.updated"


def test_a_rejection_never_names_an_unexpected_field_which_may_be_personal_data():
    event = sample("customer.identified.json")
    event["detail"]["bob@example.org"] = True  # a producer keyed something by an address
    with pytest.raises(RejectedEvent) as caught:
        parse_event(_body(event), NOW)
    assert caught.value.reason == "invalid_detail"
    assert "bob@example.org" not in caught.value.message and "<unexpected field>" in caught.value.message


def test_emails_are_normalised_so_one_person_has_one_key():
    _, detail = parse_event(_body(sample("customer.identified.json")), NOW)
    assert detail.email == "ann@example.org"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    detail=st.dictionaries(
        st.sampled_from(
            [
                "event_id",
                "occurred_at",
                "customer_id",
                "anonymous_id",
                "email",
                "items",
                "channel",
                "granted",
                "product_id",
                "x",
            ]
        ),
        json_values,
        max_size=6,
    ),
    kind=st.sampled_from([*DETAIL_TYPES, "other"]),
)
def test_given_any_json_detail_then_parsing_either_succeeds_or_rejects_with_a_reason(detail, kind):
    body = json.dumps({"id": "1", "detail-type": kind, "source": "s", "time": "2026-11-02T10:00:00Z", "detail": detail})
    try:
        parse_event(body, NOW)
    except RejectedEvent as rejection:
        assert rejection.reason in {
            "bad_envelope",
            "unknown_detail_type",
            "invalid_detail",
            "missing_identifiers",
            "future_timestamp",
        }


@settings(max_examples=200, deadline=None)
@given(body=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_given_any_text_then_parsing_never_crashes(body):
    with contextlib.suppress(RejectedEvent):
        parse_event(body, NOW)


@pytest.mark.parametrize("address", ["ann\x1c@example.org", "ann@exa\x1fmple.org", "a\x85b@x.org", "a\u2028b@x.org"])
def test_an_address_with_a_control_or_line_separator_character_is_refused(address):
    with pytest.raises(ValidationError):
        Identifiers(email=address)
