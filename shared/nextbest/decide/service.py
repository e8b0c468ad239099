"""The decide step's orchestration: read, decide, take the campaign's cap and budget from leased blocks, and
commit the decision with the profile it was checked against, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

from nextbest.core import experiments
from nextbest.core.campaigns import Campaign, Policy
from nextbest.core.catalog import Product
from nextbest.core.commands import DueProfile, DueTrigger, Poll, Release, delivery_request
from nextbest.core.coupons import CouponsGone
from nextbest.core.decision import Decision, decision_id
from nextbest.core.due import DUE_SHARDS, poll_window
from nextbest.core.events import Channel
from nextbest.core.guardrails import cap_reason, quiet_from, quiet_until
from nextbest.core.ports import Alarms, Conflict, DecisionExists, Outbox, Store
from nextbest.core.profiles import LAPSE, Profile
from nextbest.core.routing import refusal
from nextbest.decide.engine import Coupons, checked, decide, limits, record, record_fallback, wanted_products
from nextbest.decide.leases import Leases

NOT_IN_AUDIENCE = ("audience", "status", "outside", "no orders")
RESUME_WITHIN = timedelta(hours=1)
"""A trigger handled this recently is finished again when its profile is handed over: the worker that decided it
may have crashed after committing the decision and before queueing its request, and the queue's retry of the
same hand-over finds the trigger handled, no longer due. Resuming reads the decision (one Query) and queues its
request again only while it is still ``queued`` (deliver's claim sends it once, however often it is queued)."""
Released = Literal["queued", "deferred", "suppressed", "already_handled"]


class _Catalog(Mapping[str, Product]):
    """The products a decision may show, read (``read``: one request) the first time the engine looks at one. Most
    decisions send nothing, and the engine then never does (``nextbest.decide.engine.decide``)."""

    def __init__(self, read: Callable[[], dict[str, Product]]) -> None:
        self._read = read
        self._products: dict[str, Product] | None = None

    def _read_once(self) -> dict[str, Product]:
        if self._products is None:
            self._products = self._read()
        return self._products

    def __getitem__(self, product_id: str) -> Product:
        return self._read_once()[product_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read_once())

    def __len__(self) -> int:
        return len(self._read_once())


@dataclass
class Decider:
    store: Store
    deliver: Mapping[Channel, Outbox]
    """deliver's queue for each channel."""
    decide_queue: Outbox
    scheduler: Alarms
    campaigns: list[Campaign]
    policy: Policy
    site_url: str
    models: Any = None
    """``nextbest.decide.scoring.Models`` when deployed; without it decide falls back to rules."""
    live: Any = None
    """``nextbest.decide.live.LivePolicy`` when one is deployed; without it decide ranks by expected value."""
    arm_counts_ttl: timedelta = timedelta(seconds=60)
    """How long variant counters are reused, on the decisions' clock: a minute of real time when deployed; the
    demo and the lab, whose clocks run hours a second, set a span of their simulated time."""
    cart_url: str = ""
    """The shop's cart page, where a cart campaign's links lead; empty: ``<site_url>/cart``."""
    coupons: Coupons | None = None
    """Issues the codes of offers that carry one (``nextbest.core.coupons.Issuer``); without it, none is issued."""
    _arms: dict[str, tuple[datetime, experiments.ArmCounts]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.campaigns}
        self.leases = Leases(self.store)
        """This container's blocks of the campaigns' caps and budgets."""

    def handle(self, due: DueTrigger, now: datetime, profile: Profile | None = None) -> Decision | None:
        """Decide once for a due trigger; retries (conflicts, a counter refusing) re-decide on fresh data."""
        excluded: dict[str, str] = {}
        for _ in range(6):
            profile = profile or self.store.profile(due.profile_key)
            if profile is None or profile.key != due.profile_key:
                return None  # merged into another profile, which carries (and re-armed) the trigger
            if profile.triggers.get(due.trigger) != due.due_at:
                if profile.handled.get(due.trigger) == due.due_at:  # decided: finish what a crash may have cut
                    return self._resume(decision_id(profile.key, due.trigger, due.due_at), profile, now)
                return None  # moved (the due index holds its new time), or its reason vanished
            scores = self.models.score(profile, now) if self.models is not None else None
            # Read for each decision that looks at it, not cached in the container: a product that sold out a minute
            # ago must not be recommended, and the read is one BatchGetItem of a few small items (docs/scale.md).
            catalog = _Catalog(partial(self.store.products, wanted_products(profile, scores, due.trigger)))
            try:
                decision = decide(
                    profile, due.trigger, due.due_at, self.campaigns, self.policy, now, self.site_url, scores,
                    lambda campaign: self.arm_counts(campaign, now), excluded, self.live, catalog, self.cart_url,
                    self.coupons,
                )  # fmt: skip
            except CouponsGone as gone:  # like a counter's refusal: the campaign is out, with its reason
                excluded[gone.campaign_id] = gone.reason
                continue
            if due.trigger == LAPSE and all(c.reason.startswith(NOT_IN_AUDIENCE) for c in decision.candidates):
                try:  # a lapse check records only customers some campaign was meant for; the rest wait a week
                    self.store.update_profile(checked(profile, due.due_at, now))
                except Conflict:
                    profile = None
                    continue
                return None
            taken = limits(decision, self.by_id)
            refused = self.leases.take(taken, now)
            if refused is not None and decision.campaign_id:
                excluded[decision.campaign_id] = refused
                continue  # decide again without that campaign, on the same profile
            updated = record(profile, decision, self.by_id, self.policy.quiet_hours.default_time_zone)
            status = {"send": "queued", "holdout": "held_out", "defer": "deferred"}.get(decision.action, "no_action")
            try:
                self.store.commit_decision(decision, status, updated if updated != profile else None)
            except DecisionExists:
                self.leases.give_back(taken)
                try:
                    return self._resume(decision.decision_id, profile, now)
                except Conflict:
                    profile = None
                    continue
            except Conflict:
                self.leases.give_back(taken)
                profile = None
                continue
            self._after(decision, status, updated, now)
            return decision
        raise Conflict(due.profile_key, why="kept changing while deciding")

    def _resume(self, did: str, profile: Profile, now: datetime) -> Decision | None:
        """A retry found its decision already made: finish what may not have happened after the commit. A decision
        to send nothing is recorded before its profile is written (``Decisions.commit_decision``): a profile that
        still holds its trigger was not, and is written now from the record (Conflict if it moved meanwhile). Only
        such a decision: a deferral leaves its trigger pending on purpose, and writing the profile again would put it
        back in the due index every minute of the customer's quiet hours."""
        existing = self.store.decision(did)
        if existing is None:
            return None
        decision = existing.decision
        if decision.action == "none" and profile.triggers.get(decision.trigger) == decision.trigger_due_at:
            self.store.update_profile(record(profile, decision, self.by_id, self.policy.quiet_hours.default_time_zone))
        self._after(decision, existing.status, profile, now)
        return decision

    def _after(self, decision: Decision, status: str, profile: Profile, now: datetime) -> None:
        if status == "queued":
            assert decision.channel is not None
            self._queue(decision.decision_id, profile, decision.channel, now)
        if decision.action == "defer" and decision.defer_until:
            self.scheduler.arm(DueTrigger(profile_key=decision.profile_key, trigger=decision.trigger,
                                          due_at=decision.trigger_due_at), at=decision.defer_until)  # fmt: skip

    def poll(self, poll: Poll) -> int:
        """Hand decide every profile of the poll's shard of the due index (every shard if it names none) whose
        index time is in this poll's window (one :class:`DueProfile` each, ten a request). A failed poll is
        retried by the queue: a profile handed over twice is decided once."""
        after, until = poll_window(poll.poll_at)
        found = 0
        for shard in range(DUE_SHARDS) if poll.shard is None else (poll.shard,):
            keys = self.store.due(shard, after, until)
            self.decide_queue.send_all([DueProfile(profile_key=key).model_dump_json() for key in keys])
            found += len(keys)
        return found

    def due(self, due: DueProfile, now: datetime) -> list[Decision]:
        """Decide each trigger of the profile that is due by now, earliest first (each on the profile as the
        previous one left it). One not yet due is left for the poll that reaches its time."""
        profile = self.store.profile(due.profile_key)
        if profile is None or profile.key != due.profile_key:
            return []  # merged into another profile (which carries its triggers) or erased
        for trigger, handled_at in sorted(profile.handled.items(), key=lambda t: (t[1], t[0])):
            if now - RESUME_WITHIN <= handled_at <= now and profile.triggers.get(trigger) != handled_at:
                self.handle(DueTrigger(profile_key=profile.key, trigger=trigger, due_at=handled_at), now, profile)
        decided = []
        read: Profile | None = profile  # the first trigger is decided on this read; the next ones on what it left
        for trigger, due_at in sorted(profile.triggers.items(), key=lambda t: (t[1], t[0])):
            if due_at <= now:
                decision = self.handle(DueTrigger(profile_key=profile.key, trigger=trigger, due_at=due_at), now, read)
                decided += [decision] if decision is not None else []
                read = None
        return decided

    def release(self, command: Release, now: datetime) -> Released:
        """Let a ``waiting`` decision (a fallback, a soft bounce's retry, a send quiet hours overtook) go out
        through the same guardrails as any message: suppressed if its channel may not be used or a cap is full,
        deferred to the end of the customer's quiet hours, else queued for deliver together with the profile
        that logs it (conditional on its version, so a concurrent decision cannot pass the same cap)."""
        for _ in range(6):
            stored = self.store.decision(command.decision_id)
            if stored is None or stored.status not in ("waiting", "queued"):
                return "already_handled"
            decision = stored.decision
            channel = decision.channel
            assert channel is not None
            profile = self.store.profile(decision.profile_key)
            if stored.status == "queued":  # released before, and the request may have been lost in a crash
                if profile is not None:
                    self._queue(decision.decision_id, profile, channel, now)
                return "queued"
            why = refusal(profile, channel)
            if why is None:
                assert profile is not None
                until = quiet_until(profile, channel, self.policy, now)
                if until is not None:
                    self.scheduler.arm(command, at=until)
                    return "deferred"
                why = cap_reason(
                    profile, channel, self.policy, now, replacing=decision.fallback_of or decision.decision_id
                )
            if why is not None:
                self.store.move_decision(decision.decision_id, "waiting", "suppressed", reason=why)
                return "suppressed"
            assert profile is not None
            logged = record_fallback(profile, decision, now)
            try:
                if not self.store.move_decision(decision.decision_id, "waiting", "queued", profile=logged):
                    continue
            except Conflict:
                continue
            self._queue(decision.decision_id, profile, channel, now)
            return "queued"
        raise Conflict(command.decision_id, why="kept changing while releasing")

    def _queue(self, did: str, profile: Profile, channel: Channel, now: datetime) -> None:
        """Ask deliver, on the channel's own queue, to send a queued decision before the customer's quiet hours
        begin (at once, if a retry finds them already begun: deliver then hands it back)."""
        send_before = (
            now if quiet_until(profile, channel, self.policy, now) else quiet_from(profile, channel, self.policy, now)
        )
        self.deliver[channel].send(delivery_request(did, send_before))

    def arm_counts(self, campaign: Campaign, now: datetime) -> experiments.ArmCounts:
        """Sends and conversions per variant, re-read when ``arm_counts_ttl`` has passed on the clock."""
        if campaign.allocation != "thompson" or len(campaign.variants) < 2:
            return {}
        cached = self._arms.get(campaign.id)
        if cached is None or now - cached[0] >= self.arm_counts_ttl or now < cached[0]:
            cached = (now, self.store.arm_counts(campaign.id, [v.id for v in campaign.variants]))
            self._arms[campaign.id] = cached
        return cached[1]
