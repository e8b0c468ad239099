"""Deliver: send a decided message at most once, and never to a channel the customer has left.

Consent and reachability are checked again at send time, against a consistent read of the profile, so an
opt-out or a bounce that arrived after the decision still stops it; a request that reaches deliver after the
customer's quiet hours began (``send_before``: retries, a backlog) is handed back to decide, which defers it to
morning. The decision's status is the idempotency key: only the invocation that moves it from ``queued`` to
``sending`` may send. Deliver never queues a message itself: a fallback is handed to decide, like any send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from nextbest.core import clock
from nextbest.core.clock import iso
from nextbest.core.commands import release
from nextbest.core.decision import Decision, Message
from nextbest.core.ports import (
    EmailSender,
    OptedOut,
    Outbox,
    OutcomeUnknown,
    PushSender,
    Refused,
    Retry,
    SmsSender,
    Store,
    Unreachable,
)
from nextbest.core.profiles import Consent, Profile, address_hash, mark_undeliverable, offer_consent
from nextbest.core.routing import fallback, refusal
from nextbest.core.settings import DELIVER_TIMEOUT

Outcome = Literal["sent", "suppressed", "deferred", "already_handled", "failed", "unknown"]


@dataclass(frozen=True)
class Delivered:
    outcome: Outcome
    reason: str = ""
    channel: str | None = None


def deliver(
    store: Store,
    decision_id: str,
    email: EmailSender,
    sms: SmsSender,
    push: PushSender | None = None,
    decide: Outbox | None = None,
    send_before: datetime | None = None,
    request_id: str = "",
) -> Delivered:
    """Send the decision ``decision_id`` if it is still ``queued`` and may go now; ``decide`` is where a
    fallback or a send overtaken by quiet hours goes back to (a Release). ``request_id`` is the delivery
    request's SQS message id: the claim names it, so a later delivery of the same request knows the claim is
    its own earlier attempt's, which is over."""
    record = store.decision(decision_id)
    if record is None:
        return Delivered("failed", "decision not found")
    if record.status == "waiting" and decide is not None:  # handed back before a crash lost the Release
        decide.send(release(decision_id))
    if record.status == "sending":
        if not (_own_earlier(record.claim, request_id) or _abandoned(record.claimed_at)):
            # Another delivery (or this request's earlier attempt) holds the claim: come back later, when it has
            # either recorded the outcome or is certainly gone, instead of dropping the request now.
            raise Retry("claimed by a delivery still within its time")
        # Claimed by an invocation that died before it recorded what the provider said (the send may have gone):
        # settle it as unknown, never send it again.
        store.move_decision(decision_id, "sending", "unknown", reason="claimed, never confirmed: may have gone")
        return Delivered("unknown", "claimed, never confirmed", record.decision.channel)
    if record.status != "queued":
        return Delivered("already_handled", record.status)
    decision = record.decision
    channel = decision.channel
    assert channel is not None and decision.action == "send"
    profile = store.profile(decision.profile_key)
    stopped = _stopped(store, decision, profile, push)
    if stopped is not None:
        return stopped
    assert profile is not None
    if send_before is not None and clock.now() >= send_before and decide is not None:
        if store.move_decision(decision_id, "queued", "waiting", reason="quiet hours began before it was sent"):
            decide.send(release(decision_id))
        return Delivered("deferred", "quiet hours began before it was sent", channel)
    if not store.claim(decision_id, f"{request_id}:{uuid.uuid4().hex}"):
        return Delivered("already_handled", "claimed by another delivery")
    return _send(store, decision, profile, email, sms, push, decide)


CLAIM_TIMEOUT = 2 * DELIVER_TIMEOUT
"""A claim this old belongs to an invocation that is gone (Lambda stopped it at its timeout), and it is shorter
than the queue's visibility timeout (six times the function's), so the request that comes back finds it so."""


def _own_earlier(claim: str | None, request_id: str) -> bool:
    """The claim was made by an earlier delivery of this same request: SQS hands a message out again only after
    that attempt failed or its visibility timeout (six times the function's) passed, so it is over."""
    return bool(request_id) and claim is not None and claim.startswith(f"{request_id}:")


def _abandoned(claimed_at: str | None) -> bool:
    return claimed_at is not None and clock.now() - datetime.fromisoformat(claimed_at) > CLAIM_TIMEOUT


def _stopped(store: Store, decision: Decision, profile: Profile | None, push: PushSender | None) -> Delivered | None:
    """Suppress the decision if its channel may not be used now (checked again at the last moment: consent, a
    bounce, a STOP reply may have come after it was decided); None if it may go."""
    channel = decision.channel
    assert channel is not None
    why_not = refusal(profile, channel) or (
        "push is not configured (no platform application)" if channel == "push" and push is None else None
    )
    if why_not is None:
        return None
    store.move_decision(decision.decision_id, "queued", "suppressed", reason=why_not)
    return Delivered("suppressed", why_not, channel)


def _send(
    store: Store,
    decision: Decision,
    profile: Profile,
    email: EmailSender,
    sms: SmsSender,
    push: PushSender | None,
    decide: Outbox | None,
) -> Delivered:
    """Send a claimed decision once, and record what the provider said (never retried after a timeout)."""
    decision_id, channel = decision.decision_id, decision.channel
    assert channel is not None
    message = decision.messages[channel]
    dead: list[str] = []
    token: str | None = None
    try:
        provider_id: str | None
        if channel == "email":
            assert profile.email
            provider_id = email.send(profile.email, message, decision)
        elif channel == "sms":
            assert profile.phone
            provider_id = sms.send(profile.phone, message, decision)
        else:
            assert push is not None
            provider_id, token = _push(push, profile.push_tokens, message, decision, dead)
    except Retry:
        _forget_tokens(store, profile.key, dead)
        store.move_decision(decision_id, "sending", "queued")
        raise
    except OptedOut:  # the number replied STOP, which the provider knew before we did
        stop = Consent(granted=False, at=clock.now(), source="sms_stop")
        store.change(profile.key, lambda p: offer_consent(p, "sms", stop))
        store.move_decision(decision_id, "sending", "suppressed", reason="sms opted out (STOP)")
        return Delivered("suppressed", "sms opted out (STOP)", channel)
    except Refused as refused:
        _forget_tokens(store, profile.key, dead)
        store.move_decision(decision_id, "sending", "failed", reason=refused.code)
        return Delivered("failed", refused.code, channel)
    except OutcomeUnknown as unknown:
        # The provider may or may not have accepted it. Sending again could duplicate: we never do.
        _forget_tokens(store, profile.key, dead)
        store.move_decision(decision_id, "sending", "unknown", reason=str(unknown))
        return Delivered("unknown", str(unknown), channel)
    updated = _forget_tokens(store, profile.key, dead)
    if provider_id is None:  # every device token turned out to be disabled: nothing was sent
        store.move_decision(decision_id, "sending", "failed", reason="push endpoints disabled")
        rerouted = fallback(store, decide, decision, updated or profile) if decide else None
        return Delivered("failed", f"push endpoints disabled; fallback {rerouted or 'none'}", channel)
    store.move_decision(decision_id, "sending", "sent", message_id=provider_id, sent_at=iso(clock.now()))
    if token is not None:
        store.remember_message(provider_id, decision_id, address_hash(f"t:{token}"))
    return Delivered("sent", "", channel)


def _push(
    push: PushSender, tokens: list[str], message: Message, decision: Decision, dead: list[str]
) -> tuple[str | None, str | None]:
    """Try the customer's live device tokens in turn; a disabled one is noted in ``dead`` and skipped.
    Returns the provider's message id and the token it went to, or (None, None) if none could take it."""
    for token in tokens:
        try:
            return push.send(token, message, decision), token
        except Unreachable:
            dead.append(token)
    return None, None


def _forget_tokens(store: Store, key: str, dead: list[str]) -> Profile | None:
    if not dead:
        return None
    return store.change(key, lambda p: mark_undeliverable(p, [f"t:{t}" for t in dead]))
