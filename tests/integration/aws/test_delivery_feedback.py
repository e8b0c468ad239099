"""Deliver and feedback against moto's SES/SNS: once per decision, never past an opt-out, SMS fallback."""

import pytest
from botocore.exceptions import ClientError
from nextbest.aws.senders import SesEmail, SnsSms
from nextbest.core.events import ConsentUpdated
from nextbest.core.ports import Retry
from nextbest.deliver.service import deliver
from nextbest.feedback.notifications import parse
from nextbest.feedback.service import handle
from nextbest.ingest.service import ingest

from tests.builders import DELAYS, DUE, Collect, abandoned_cart, release, ses_email, table_store
from tests.conftest import EVENTS

SES_SAMPLES = EVENTS / "ses"


@pytest.fixture
def pipeline(emulation):
    store = table_store(emulation)
    email = ses_email(emulation)
    return store, Collect(), email, SnsSms()


def shopper(store, email="ann@example.org", sms=True):
    return abandoned_cart(store, {"email": True, "sms": sms}, email=email, phone="+14155550100")


def test_given_a_redelivered_request_then_the_email_is_sent_once(pipeline, emulation):
    store, _, email, sms = pipeline
    decision = shopper(store)
    first = deliver(store, decision.decision_id, email, sms)
    second = deliver(store, decision.decision_id, email, sms)
    assert (first.outcome, second.outcome) == ("sent", "already_handled")
    assert len(emulation.sent_emails()) == 1


def test_given_an_opt_out_after_the_decision_then_nothing_is_sent(pipeline, emulation):
    store, _, email, sms = pipeline
    decision = shopper(store)
    ingest(
        store,
        "consent.updated",
        ConsentUpdated(event_id="out", occurred_at=DUE, customer_id="cus_1", channel="email", granted=False),
        DELAYS,
    )
    result = deliver(store, decision.decision_id, email, sms)
    assert result.outcome == "suppressed" and "no email consent" in result.reason
    assert emulation.sent_emails() == []
    assert store.decision(decision.decision_id).status == "suppressed"


def test_given_a_claim_that_took_effect_but_whose_answer_was_lost_then_the_email_still_goes_once(
    pipeline, emulation, response_lost
):
    store, _, email, sms = pipeline
    decision = shopper(store)
    lost = response_lost("dynamodb", "UpdateItem")  # the claim (queued -> sending) is written; its answer is lost

    result = deliver(store, decision.decision_id, email, sms)

    assert lost.attempts >= 2  # botocore tried the claim again, and its condition failed: it was ours already
    assert result.outcome == "sent" and len(emulation.sent_emails()) == 1
    assert store.decision(decision.decision_id).status == "sent"


def test_given_ses_throttling_then_the_request_is_retried_later_not_lost(pipeline, emulation):
    store, _, _, sms = pipeline
    decision = shopper(store)

    class ThrottlingSes:
        def send_email(self, **kwargs):
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "SendEmail")

    ses = pipeline[2]
    throttled = SesEmail(
        ses.sender, ses.configuration_set, ses.unsubscribe_url, ses.signing_key, client=ThrottlingSes()
    )
    with pytest.raises(Retry):
        deliver(store, decision.decision_id, throttled, sms)
    assert store.decision(decision.decision_id).status == "queued"
    assert deliver(store, decision.decision_id, pipeline[2], sms).outcome == "sent"


def _ses_event(name: str, decision_id: str, address: str) -> str:
    text = (SES_SAMPLES / name).read_text().replace("DECISION_ID", decision_id).replace("RECIPIENT", address)
    return text


def test_given_a_permanent_bounce_then_the_address_is_marked_and_sms_takes_over(pipeline, emulation):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    deliver(store, decision.decision_id, email, sms)
    effect = handle(store, decide_queue, parse(_ses_event("bounce.json", decision.decision_id, "ann@example.org")))
    assert effect.effect == "sms_fallback"
    store.forget()
    assert store.profile("c:cus_1").email_status == "bounced"
    [fallback_id] = release(store, decide_queue)  # through decide's guardrails
    assert deliver(store, fallback_id, email, sms).outcome == "sent"
    [(_, phone, text)] = emulation.sent_sms()
    assert phone == "+14155550100" and "utm_medium=sms&utm_campaign=cart-abandonment" in text
    assert f"nb={decision.decision_id}" in text  # the fallback's link names the decision it belongs to
    again = handle(store, decide_queue, parse(_ses_event("bounce.json", decision.decision_id, "ann@example.org")))
    assert again.effect == "sms_fallback" and release(store, decide_queue) == []  # a repeated bounce sends nothing
    assert deliver(store, fallback_id, email, sms).outcome == "already_handled"


def test_given_a_bounce_without_sms_consent_then_there_is_no_fallback(pipeline):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store, sms=False)
    deliver(store, decision.decision_id, email, sms)
    effect = handle(store, decide_queue, parse(_ses_event("bounce.json", decision.decision_id, "ann@example.org")))
    assert effect.effect == "marked_bounced"


def test_given_a_complaint_then_email_consent_is_withdrawn(pipeline):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    deliver(store, decision.decision_id, email, sms)
    effect = handle(store, decide_queue, parse(_ses_event("complaint.json", decision.decision_id, "ann@example.org")))
    assert effect.effect == "suppressed"
    store.forget()
    profile = store.profile("c:cus_1")
    assert not profile.has_consent("email") and profile.consent["email"].source == "complaint"


def test_given_transient_bounces_then_the_email_is_retried_and_the_third_counts_as_permanent(pipeline, emulation):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    for attempt in (1, 2):
        assert deliver(store, decision.decision_id, email, sms).outcome == "sent"
        effect = handle(
            store, decide_queue, parse(_ses_event("transient-bounce.json", decision.decision_id, "ann@example.org"))
        )
        assert effect.effect == "retry_later" and store.decision(decision.decision_id).status == "waiting"
        assert release(store, decide_queue) == [decision.decision_id]
        store.forget()
        assert store.profile("c:cus_1").soft_bounces == attempt
    deliver(store, decision.decision_id, email, sms)
    third = handle(
        store, decide_queue, parse(_ses_event("transient-bounce.json", decision.decision_id, "ann@example.org"))
    )
    assert third.effect == "sms_fallback"
    store.forget()
    assert store.profile("c:cus_1").email_status == "bounced"


def test_given_a_delivery_then_soft_bounces_are_forgotten(pipeline):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    deliver(store, decision.decision_id, email, sms)
    handle(store, decide_queue, parse(_ses_event("transient-bounce.json", decision.decision_id, "ann@example.org")))
    release(store, decide_queue)
    deliver(store, decision.decision_id, email, sms)
    assert (
        handle(store, decide_queue, parse(_ses_event("delivery.json", decision.decision_id, "ann@example.org"))).effect
        == "delivered"
    )
    store.forget()
    assert store.profile("c:cus_1").soft_bounces == 0
    assert store.decision(decision.decision_id).status == "delivered"


def test_given_a_reject_then_the_content_failed_but_sms_still_reaches_the_customer(pipeline):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    deliver(store, decision.decision_id, email, sms)
    effect = handle(store, decide_queue, parse(_ses_event("reject.json", decision.decision_id, "ann@example.org")))
    assert effect.effect == "sms_fallback"
    assert store.decision(decision.decision_id).status == "rejected"
    store.forget()
    assert store.profile("c:cus_1").email_status == "ok"


def test_opens_clicks_delays_and_rendering_failures_are_recorded_on_the_decision(pipeline, emulation):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    deliver(store, decision.decision_id, email, sms)
    effects = [
        handle(store, decide_queue, parse(_ses_event(name, decision.decision_id, "ann@example.org"))).effect
        for name in ("delivery-delay.json", "open.json", "click.json", "rendering-failure.json")
    ]
    assert effects == ["delayed", "engaged", "engaged", "failed"]
    item = emulation.client("dynamodb").get_item(
        TableName=emulation.output("TableName"), Key={"pk": {"S": f"d:{decision.decision_id}"}, "sk": {"S": "DECISION"}}
    )["Item"]
    assert {"delayed_at", "opened_at", "clicked_at"} <= set(item)
    store.forget()
    assert store.profile("c:cus_1").last_engaged_at is not None


def test_an_unknown_notification_type_is_rejected_with_a_reason():
    from nextbest.core.events import RejectedEvent

    with pytest.raises(RejectedEvent) as rejected:
        parse(_ses_event("unknown-type.json", "d", "ann@example.org"))
    assert rejected.value.reason == "unknown_notification_type"


def test_given_a_number_on_the_carrier_stop_list_then_no_text_goes_and_the_opt_out_is_recorded(pipeline, emulation):
    store, _, email, sms = pipeline
    decision = abandoned_cart(store, {"sms": True}, phone="+14155550199")  # moto: "…99" replied STOP
    assert decision.channel == "sms"
    result = deliver(store, decision.decision_id, email, sms)
    assert result.outcome == "suppressed" and "STOP" in result.reason
    assert emulation.sent_sms() == []
    store.forget()
    consent = store.profile("c:cus_1").consent["sms"]
    assert not consent.granted and consent.source == "sms_stop"


def test_given_a_stop_reply_then_sms_consent_is_withdrawn_and_start_gives_it_back(pipeline):
    from datetime import UTC, datetime

    from nextbest.feedback.service import handle_reply

    store = pipeline[0]
    shopper(store)
    stop = parse((EVENTS / "sms" / "stop.json").read_text())
    assert handle_reply(store, stop, datetime(2026, 11, 3, tzinfo=UTC)).effect == "suppressed"
    store.forget()
    assert not store.profile("c:cus_1").has_consent("sms")
    start = stop.model_copy(update={"message_body": " start "})
    assert handle_reply(store, start, datetime(2026, 11, 4, tzinfo=UTC)).effect == "resubscribed"
    store.forget()
    assert store.profile("c:cus_1").has_consent("sms")


def test_given_undetermined_bounces_naming_another_recipient_then_the_email_stops_after_the_soft_bounce_limit(
    pipeline,
):
    store, decide_queue, email, sms = pipeline
    decision = shopper(store)
    sends = 0
    for _ in range(6):
        if deliver(store, decision.decision_id, email, sms).outcome != "sent":
            break
        sends += 1
        body = _ses_event("transient-bounce.json", decision.decision_id, "ann@example.org")
        body = body.replace('"Transient"', '"Undetermined"').replace(
            '"emailAddress": "ann@example.org"', '"emailAddress": "auto-reply@example.net"'
        )
        handle(store, decide_queue, parse(body))
        release(store, decide_queue)
        store.forget()
    assert sends == 3  # SOFT_BOUNCE_LIMIT: the third counts as permanent
    assert store.decision(decision.decision_id).status == "bounced"
    assert store.profile("c:cus_1").email_status == "bounced"


def test_given_an_address_the_mime_headers_refuse_then_the_decision_fails_instead_of_staying_claimed(
    pipeline, emulation
):
    store, _, email, sms = pipeline
    decision = shopper(store)  # an address stored before control characters were refused at the door
    store.change("c:cus_1", lambda p: p.model_copy(update={"email": "ann\x1c@example.org"}))
    result = deliver(store, decision.decision_id, email, sms)
    assert (result.outcome, result.reason) == ("failed", "invalid_message")
    assert store.decision(decision.decision_id).status == "failed" and emulation.sent_emails() == []
