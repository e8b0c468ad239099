"""Decide when commands misbehave: a trigger handed over for a time the profile no longer holds, a profile handed
over again after a crash."""

from datetime import timedelta

from nextbest.core.commands import DueProfile, DueTrigger
from nextbest.memory import MemoryStore

from tests.builders import DUE, Collect, abandoned_cart, decider


def test_a_trigger_handed_over_for_a_time_the_profile_no_longer_holds_decides_and_arms_nothing():
    """The cart moved later after the command was sent: the due index holds the new time, whose poll hands the
    profile over again, so decide neither decides early nor sets an alarm of its own."""
    store = MemoryStore()
    abandoned_cart(store, {"email": False})  # nothing to send; the cart's trigger is what matters
    later = DUE + timedelta(minutes=40)
    store.change("c:cus_1", lambda p: p.model_copy(update={"triggers": {"cart_abandoned": later}, "handled": {}}))
    decide = decider(store)

    assert decide.handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE) is None

    assert decide.scheduler.armed == []
    assert store.profile("c:cus_1").triggers == {"cart_abandoned": later}


def test_a_profile_handed_over_again_after_a_crash_between_commit_and_queue_gets_its_request_queued():
    """decide committed the reminder (the trigger is handled, no longer due) and crashed before queueing its
    request; SQS hands the same profile over again: the queued decision's request goes out, once a hand-over."""
    store = MemoryStore()
    sent = abandoned_cart(store, {"email": True}, email="ann@example.org")  # its request went to another queue
    queue = Collect()
    retry = decider(store, queue)

    retry.due(DueProfile(profile_key="c:cus_1"), DUE + timedelta(minutes=3))

    assert [m["decision_id"] for m in queue.sent] == [sent.decision_id]
    assert store.decision(sent.decision_id).status == "queued"


def test_a_decision_already_on_its_way_is_not_queued_again_by_a_later_hand_over():
    store = MemoryStore()
    sent = abandoned_cart(store, {"email": True}, email="ann@example.org")
    assert store.claim(sent.decision_id, "deliver-1")  # deliver has it
    queue = Collect()

    decider(store, queue).due(DueProfile(profile_key="c:cus_1"), DUE + timedelta(minutes=3))
    decider(store, queue).due(DueProfile(profile_key="c:cus_1"), DUE + timedelta(hours=2))

    assert queue.sent == []


def test_a_deferral_handled_again_in_the_quiet_hours_writes_nothing_so_the_due_index_does_not_hand_it_back():
    """A text deferred to the customer's morning keeps its trigger pending on purpose. Handled again before the
    morning (a redelivery, the profile due for another trigger), decide finds the deferral made and must not write
    the profile: a write puts the pending trigger back in the due index at the next minute, all night long."""
    store = MemoryStore()
    deferred = abandoned_cart(store, {"sms": True}, phone="+14155550100", time_zone="America/New_York")  # 05:00
    assert deferred.action == "defer"
    writes, version = store.writes, store.profile("c:cus_1").version

    again = decider(store).handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE)

    assert again == deferred
    assert store.writes == writes and store.profile("c:cus_1").version == version
