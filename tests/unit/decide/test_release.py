"""Every message goes out through decide's guardrails: a fallback, a soft bounce's retry and a send that quiet
hours overtook are handed back to decide (a Release), which defers them to morning or suppresses them at a cap."""

from datetime import timedelta

from nextbest.core import clock
from nextbest.core.clock import ManualClock
from nextbest.core.commands import DeliveryRequest, Release
from nextbest.core.profiles import MessageLog
from nextbest.core.routing import fallback
from nextbest.deliver.service import deliver
from nextbest.memory import MemoryStore

from tests.builders import DUE, Collect, abandoned_cart, decider

PHONE = "+14155550100"


class Sender:
    """A provider that accepts every message (a fake, not a mock)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to, message, decision) -> str:
        self.sent.append(to)
        return f"msg-{len(self.sent)}"


def bounced_email(store: MemoryStore, time_zone: str = "UTC") -> tuple[str, Collect]:
    """A cart reminder e-mailed at DUE (10:00 UTC) that bounced: its SMS fallback is handed to decide."""
    consent = {"email": True, "sms": True}
    decision = abandoned_cart(store, consent, email="ann@example.org", phone=PHONE, time_zone=time_zone)
    assert store.move_decision(decision.decision_id, "queued", "sent")
    profile = store.change(decision.profile_key, lambda p: p.model_copy(update={"email_status": "bounced"}))
    decide = Collect()
    assert fallback(store, decide, decision, profile) == "sms"
    [release] = decide.sent
    return release["decision_id"], decide


def test_given_a_fallback_that_would_land_at_night_then_decide_defers_it_to_the_customers_morning():
    store = MemoryStore()
    fallback_id, _ = bounced_email(store, time_zone="America/Los_Angeles")  # 10:00 UTC is 02:00 there
    deliveries = Collect()
    night = decider(store, deliveries)

    assert night.release(Release(decision_id=fallback_id), DUE) == "deferred"

    assert deliveries.sent == [] and store.decision(fallback_id).status == "waiting"
    [(armed, at)] = night.scheduler.armed
    assert armed == Release(decision_id=fallback_id)
    assert at == DUE.replace(hour=16)  # 08:00 in Los Angeles
    morning = decider(store, deliveries)
    assert morning.release(Release(decision_id=fallback_id), at) == "queued"
    [request] = deliveries.sent
    assert request["decision_id"] == fallback_id and store.decision(fallback_id).status == "queued"


def test_given_the_sms_cap_already_reached_then_the_fallback_is_suppressed_with_the_cap_as_reason():
    store = MemoryStore()
    fallback_id, _ = bounced_email(store)
    earlier = DUE - timedelta(hours=2)
    text = MessageLog(decision_id="earlier", campaign_id="win-back", channel="sms", at=earlier)
    store.change("c:cus_1", lambda p: p.model_copy(update={"messages": [*p.messages, text]}))
    deliveries = Collect()

    assert decider(store, deliveries).release(Release(decision_id=fallback_id), DUE) == "suppressed"

    assert deliveries.sent == []
    assert store.decision(fallback_id).status == "suppressed"


def test_a_released_fallback_is_logged_on_its_channel_so_the_next_text_counts_it():
    store = MemoryStore()
    fallback_id, _ = bounced_email(store)
    decider(store, Collect()).release(Release(decision_id=fallback_id), DUE)

    [message] = store.profile("c:cus_1").messages
    assert [(f.channel, f.at) for f in message.fallbacks] == [("sms", DUE)]
    second = store.decision(fallback_id).decision.model_copy(update={"decision_id": "another", "fallback_of": None})
    assert store.put_decision(second, "waiting")
    assert decider(store, Collect()).release(Release(decision_id="another"), DUE) == "suppressed"  # sms: 1 a day


def test_a_release_repeated_after_it_queued_the_message_asks_deliver_again_and_nothing_else():
    store = MemoryStore()
    fallback_id, _ = bounced_email(store)
    deliveries = Collect()
    decide = decider(store, deliveries)

    outcomes = [decide.release(Release(decision_id=fallback_id), DUE) for _ in range(2)]

    assert outcomes == ["queued", "queued"]
    assert [r["decision_id"] for r in deliveries.sent] == [fallback_id, fallback_id]  # deliver sends it once
    assert len(store.profile("c:cus_1").messages[0].fallbacks) == 1


def test_given_a_request_deliver_reaches_after_quiet_hours_began_then_it_is_handed_back_not_sent():
    store = MemoryStore()
    fallback_id, _ = bounced_email(store)
    deliveries = Collect()
    decider(store, deliveries).release(Release(decision_id=fallback_id), DUE)
    request = DeliveryRequest.model_validate(deliveries.sent[0])
    assert request.send_before == DUE.replace(hour=21)  # quiet hours start at 21:00 (UTC for this customer)
    sms, decide = Sender(), Collect()
    clock.install(ManualClock(request.send_before + timedelta(minutes=5)))
    try:
        result = deliver(store, fallback_id, Sender(), sms, None, decide, request.send_before)
    finally:
        clock.reset()

    assert result.outcome == "deferred" and sms.sent == []
    assert store.decision(fallback_id).status == "waiting"
    assert decide.sent == [{"decision_id": fallback_id}]
