"""Notifications are parsed into typed models, and anything else is rejected with a reason."""

import pytest
from nextbest.core.events import RejectedEvent
from nextbest.feedback.notifications import InboundSms, PushFailure, SesEvent, TextEvent, parse

from tests.conftest import EVENTS


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ses/bounce.json", SesEvent),
        ("ses/open.json", SesEvent),
        ("sms/text-delivered.json", TextEvent),
        ("sms/stop.json", InboundSms),
        ("push/delivery-failure.json", PushFailure),
    ],
)
def test_each_sample_is_parsed_into_the_model_of_its_source(name, kind):
    assert isinstance(parse((EVENTS / name).read_text()), kind)


def test_a_key_name_inside_a_value_does_not_change_how_a_body_is_read():
    body = (EVENTS / "ses" / "delivery.json").read_text().replace("DECISION_ID", "messageStatus-EndpointArn")
    assert isinstance(parse(body), SesEvent)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("sms/text-malformed.json", "bad_notification"), ("sms/voice-completed.json", "unknown_notification_type")],
)
def test_malformed_or_unknown_sms_events_are_rejected_with_a_reason(name, reason):
    with pytest.raises(RejectedEvent) as rejected:
        parse((EVENTS / name).read_text())
    assert rejected.value.reason == reason


def test_a_push_event_other_than_delivery_failure_is_rejected():
    body = (EVENTS / "push" / "delivery-failure.json").read_text().replace('"DeliveryFailure"', '"EndpointCreated"')
    with pytest.raises(RejectedEvent) as rejected:
        parse(body)
    assert rejected.value.reason == "unknown_notification_type"


def test_a_body_that_is_not_an_object_is_a_bad_notification():
    with pytest.raises(RejectedEvent) as rejected:
        parse("[1, 2]")
    assert rejected.value.reason == "bad_notification"
