"""Ingest: fold one validated event into the right profile, merging identities on the way.

Identity resolution in one paragraph: every identifier of the event is looked up; the profiles found are
merged with each other (``profiles.merge``), unknown identifiers are attached, and the result lives at the
canonical key (``profiles.canonical_key``), which depends only on the set of identifiers, never on the
order events arrived in. Other identifiers become redirects to it. Two customers are never merged: identifiers
that lead to another customer are left out (``profiles.links``), and what an event may change on a known
customer's profile depends on whether it names that customer (``profiles`` module docstring).

The catalog goes through ingest too: a product's new state is stored, and a change some campaign answers (back in
stock, a price drop) is fanned out to the customers interested in the product (``nextbest.core.interest``), each of
whom gets it as an event of their own on ingest's queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from nextbest.core import clock
from nextbest.core.attribution import attribute
from nextbest.core.catalog import Product
from nextbest.core.events import ConsentUpdated, CustomerErased, EventDetail, ProductUpdated
from nextbest.core.interest import FAN_OUT_PAGE, FanOut, Noticed, catalog_change, fan_out, index_writes, notice
from nextbest.core.ports import Catalog, Conflict, Duplicate, Interests, Outbox, Store
from nextbest.core.profiles import Profile, TriggerDelays, apply, canonical_key, identity_keys, join, links, settle
from nextbest.core.triggers import Watch

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Ingested:
    profile_key: str
    outcome: Literal["applied", "duplicate", "erased", "ignored_erased", "outdated", "not_interested"]
    merged: int = 0
    """How many existing profiles were folded into another by this event."""
    erased_keys: list[str] = field(default_factory=list)
    conflicts: int = 0
    """Identifiers of the event left out because they lead to another customer (never merged)."""


def ingest(
    store: Store, kind: str, event: EventDetail, delays: TriggerDelays, history_at: datetime | None = None
) -> Ingested:
    """Apply one event. ``history_at``: the event is imported history (``nextbest.ingest.history``), loaded at that
    time: it arms no trigger that is already due."""
    keys = identity_keys(event.identifiers())
    if isinstance(event, CustomerErased):
        return erase(store, keys)
    for _ in range(MAX_ATTEMPTS):
        joined = links(keys, store.resolve(keys), event.customer_id)
        profiles, new_keys = joined.profiles, joined.new_keys
        erased = store.erased(new_keys) if new_keys else {}
        if erased:
            # An erased person is not learnt again from behaviour, only from a grant of consent made after the
            # erasure (one made before it, replayed from a dead-letter queue, does not bring them back).
            if not (isinstance(event, ConsentUpdated) and event.granted and event.occurred_at > max(erased.values())):
                return Ingested(canonical_key(keys), "ignored_erased")
            store.lift_tombstones(sorted(erased))
        target = join(joined, event.customer_id, delays)
        updated, credited = attribute(target if profiles else None, apply(target, kind, event, delays))
        updated = updated if history_at is None else settle(updated, history_at, delays)
        _index(store, target, updated)
        try:
            store.save(updated, previous=profiles, new_keys=new_keys, event_ids=[event.event_id], counters=credited)
        except Duplicate:
            return Ingested(target.key, "duplicate")
        except Conflict:
            store.forget(keys)
            continue
        same = len(profiles) == 1 and updated.key == profiles[0].key
        merged = len(profiles) - 1 if len(profiles) > 1 else int(len(profiles) == 1 and not same)
        return Ingested(updated.key, "applied", merged=merged, conflicts=len(joined.left_out))
    raise Conflict("", why=f"gave up after {MAX_ATTEMPTS} conflicting writes")


def ingest_batch(
    store: Store, events: list[tuple[str, EventDetail]], delays: TriggerDelays, history_at: datetime | None = None
) -> list[Ingested | Exception]:
    """Ingest a batch, writing once per customer where possible.

    Events whose identifiers all lead to one existing profile, and add none, are folded into it together
    and saved in one transaction with all their markers; anything else (new identifiers, merges, erasure)
    goes one event at a time. An exception is returned in its event's place, never raised.
    """
    results: list[Ingested | Exception | None] = [None] * len(events)
    groups: dict[str, list[int]] = {}
    for index, (_, event) in enumerate(events):
        try:
            found = {} if isinstance(event, CustomerErased) else store.resolve(identity_keys(event.identifiers()))
        except Exception:  # grouping only saves writes: this event goes alone below, where an error is its own
            continue
        owners = {p.key for p in found.values() if p is not None}
        if found and len(owners) == 1 and all(found.values()):
            groups.setdefault(owners.pop(), []).append(index)
    for key, members in groups.items():
        if len(members) > 1:
            try:
                _ingest_together(store, key, members, events, delays, results, history_at)
            except Exception:
                store.forget([key])  # those events go one by one below, where their errors are reported
    for index, (kind, event) in enumerate(events):
        if results[index] is None:
            try:
                results[index] = ingest(store, kind, event, delays, history_at)
            except Exception as error:  # reported for this event alone; the batch goes on
                results[index] = error
    return [r for r in results if r is not None]  # every slot is filled by now


def _ingest_together(
    store: Store,
    key: str,
    members: list[int],
    events: list[tuple[str, EventDetail]],
    delays: TriggerDelays,
    results: list[Ingested | Exception | None],
    history_at: datetime | None,
) -> None:
    pending: list[int] = []
    for index in members:  # the same event twice in one batch (at-least-once producers) is applied once
        if any(events[i][1].event_id == events[index][1].event_id for i in pending):
            results[index] = Ingested(key, "duplicate")
        else:
            pending.append(index)
    for _ in range(MAX_ATTEMPTS):
        profile = store.resolve([key])[key]
        if profile is None or profile.key != key:
            return  # the profile moved: these events go one by one
        updated = profile
        for index in pending:
            updated = apply(updated, events[index][0], events[index][1], delays)
        updated, credited = attribute(profile, updated)
        updated = updated if history_at is None else settle(updated, history_at, delays)
        _index(store, profile, updated)
        try:
            ids = [events[i][1].event_id for i in pending]
            store.save(updated, previous=[profile], new_keys=[], event_ids=ids, counters=credited)
        except Duplicate as duplicate:
            [index] = [i for i in pending if events[i][1].event_id == duplicate.args[0]]
            results[index] = Ingested(key, "duplicate")
            pending.remove(index)
            store.forget([key])
            if not pending:
                return
            continue
        except Conflict:
            store.forget([key])
            continue
        for index in pending:
            results[index] = Ingested(key, "applied")
        return


def _index(store: Interests, before: Profile, after: Profile) -> None:
    """The interest index's writes for a profile's, made first (``nextbest.core.interest.index_writes``)."""
    if writes := index_writes(before, after, clock.now()):
        store.put_interests(writes.put, writes.delete)


def update_product(
    catalog: Catalog, event: ProductUpdated, watch: Watch | None = None, outbox: Outbox | None = None
) -> Ingested:
    """Store the product's new state (one older than the catalog's changes nothing) and, if it changed what a campaign
    answers (``watch``), fan the change out to the interested customers on ``outbox``, a message per shard of the
    interest index (without them, as in the lab, it is only stored). A repeat of the stored state fans its change out
    again: the first delivery may have stopped before it did, and each customer's event is applied once however often
    it comes."""
    product = Product.of(event)
    stored = catalog.put_product(product)
    if stored.outcome == "outdated":
        return Ingested(f"cat:{event.product_id}", "outdated")
    change = catalog_change(stored.previous, product, watch) if watch is not None else None
    if change is not None and outbox is not None:
        outbox.send_all([command.model_dump_json() for command in fan_out(change)])
    return Ingested(f"cat:{event.product_id}", "applied" if stored.outcome == "written" else "duplicate")


def fan_out_page(interests: Interests, outbox: Outbox, command: FanOut) -> int:
    """Queue the change for one page of interested customers, then (last, so a failure before it repeats this page
    rather than skipping the next) the next page of the shard, if any. How many customers were queued."""
    change = command.fan_out
    page = interests.interested(change.product_id, command.shard, command.after, FAN_OUT_PAGE, clock.now())
    outbox.send_all([Noticed(noticed=change, profile_key=k).model_dump_json() for k in page.profile_keys])
    if page.after is not None:
        outbox.send(FanOut(fan_out=change, shard=command.shard, after=page.after).model_dump_json())
    return len(page.profile_keys)


def notice_change(store: Store, command: Noticed, delays: TriggerDelays) -> Ingested:
    """Apply a catalog change to an interested customer's profile (``nextbest.core.interest.notice``), once. A
    profile gone (erased, merged away and expired) or no longer interested is left as it is."""
    key = command.profile_key
    for _ in range(MAX_ATTEMPTS):
        profile = store.resolve([key])[key]
        updated = notice(profile, command, delays) if profile is not None else None
        if profile is None or updated is None or updated == profile:
            return Ingested(profile.key if profile else key, "not_interested")
        try:
            store.save(updated, previous=[profile], new_keys=[], event_ids=[command.event_id])
        except Duplicate:
            return Ingested(profile.key, "duplicate")
        except Conflict:
            store.forget([key, profile.key])
            continue
        return Ingested(profile.key, "applied")
    raise Conflict("", why=f"gave up after {MAX_ATTEMPTS} conflicting writes")


def erase(store: Store, keys: list[str]) -> Ingested:
    """Delete the profile, every identity link, every decision and the person's entries in the interest index (under
    each of their keys: one written before a merge is under the key of the time); tombstone the identifiers.

    The profile's place in the due index goes with it; an alarm quiet hours armed rings for a profile that is no
    longer there, and decide does nothing.
    """
    found = store.resolve(keys)
    profiles = list({p.key: p for p in found.values() if p is not None}.values())
    everything = sorted(store.linked_to({*keys, *(k for p in profiles for k in (p.key, *p.identifiers))}))
    decisions = sorted({d for k in everything for d in store.decisions_of(k)})
    interests = sorted({(product_id, k) for p in profiles for product_id in p.interests for k in everything})
    store.erase(everything, decisions, interests)
    return Ingested(canonical_key(keys), "erased", erased_keys=[p.key for p in profiles])
