"""The store's interfaces (``nextbest.core.ports.Store``) in memory, with the DynamoDB table's guarantees.

Unit and property tests, the benchmark's CPU figures and the lab's experiment run the steps' real code on it,
so there is one decide loop, not a copy per simulator. It keeps what the table promises and nothing more:

* a write is all or nothing, guarded by the versions read (``Conflict``) and by event ids (``Duplicate``);
* a decision is recorded once (``DecisionExists``) and moves status only by compare-and-set;
* a lease of a limited counter is granted only up to its limit;
* the statistics counters are what the stream's tally makes of each write (``nextbest.core.counters.tally``,
  an order's credits), applied at once: exact, as the tally makes them, without its delay;
* identifiers other than the canonical one redirect to it, re-pointed on every merge;
* every profile write sets the profile's place in the due index, computed at the write's time;
* a coupon pool's code is given to one decision only, never again once given, and a decision keeps its own;
* a product's state records the state it replaced, and the interest index is read a page at a time, in key order,
  leaving out expired entries;
* reads return copies: changing a profile read from the store changes nothing until it is saved.

It is never shipped to Lambda (no handler imports it) and never used against AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from nextbest.core import clock
from nextbest.core.catalog import Product, State, Stored, newer
from nextbest.core.clock import iso
from nextbest.core.counters import Counter, Version, combined, tally
from nextbest.core.coupons import CouponsGone
from nextbest.core.decision import Decision
from nextbest.core.due import due_shard, index_time
from nextbest.core.interest import IndexEntry, InterestPage, interest_shard
from nextbest.core.ports import Conflict, DecisionExists, Duplicate, SentMessage, StoredDecision, Tallied
from nextbest.core.profiles import Profile

MAX_REDIRECT_HOPS = 5
CounterKey = tuple[str, str]


def _copy(profile: Profile) -> Profile:
    """A private copy, through JSON as the table stores it (pydantic's core does it far faster than deepcopy)."""
    return Profile.model_validate_json(profile.model_dump_json())


def _copied(decision: Decision) -> Decision:
    return Decision.model_validate_json(decision.model_dump_json())


@dataclass
class _Record:
    status: str
    decision: Decision
    fields: dict[str, str] = field(default_factory=dict)

    def version(self) -> Version:
        return self.status, set(self.fields)


class MemoryStore:
    """Implements :class:`nextbest.core.ports.Store`; ``counters`` holds every counter item as DynamoDB would."""

    def __init__(self) -> None:
        self.profiles: dict[str, Profile] = {}
        self.redirects: dict[str, str] = {}
        self.events: set[str] = set()
        self.tombstones: dict[str, datetime] = {}
        """Erased identity keys and when (the table keeps a keyed hash of each, never the key)."""
        self.decisions: dict[str, _Record] = {}
        self.messages: dict[str, SentMessage] = {}
        self.counters: dict[CounterKey, dict[str, Decimal]] = {}
        self.index_times: dict[str, datetime | None] = {}
        """Each profile's index time in the ``by_due`` index, as its last write set it."""
        self.catalog: dict[str, Product] = {}
        self.pools: dict[str, dict[str, None]] = {}
        """Each campaign's coupon codes still to give, in upload order."""
        self.coupon_claims: dict[str, str] = {}
        """The code each decision claimed."""
        self.coupons_given: dict[tuple[str, str], str] = {}
        """(campaign, code) -> the decision it was given to: never given again."""
        self.replaced: dict[str, State | None] = {}
        """Each product's state before the one stored (``was`` on the table's item)."""
        self.interests: dict[tuple[str, int], dict[str, datetime]] = {}
        """The interest index: (product id, shard) -> profile key -> when the entry expires."""
        self.checkpoints: dict[tuple[str, str], int] = {}
        """The tally's checkpoint per (shard, campaign), for the tally's own tests (this store counts at once)."""
        self.writes = 0
        """Successful writes (a transaction counts once), for the benchmark."""

    # -- profiles and identity ----------------------------------------------------------------------------

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Nothing is cached: every read is current."""

    def prefetch(self, keys: Iterable[str]) -> None:
        """Nothing to fetch ahead."""

    def prefetch_identities(self, keys: Iterable[str]) -> None:
        """Nothing to fetch ahead."""

    def resolve(self, keys: list[str]) -> dict[str, Profile | None]:
        return {key: self._resolved(key) for key in keys}

    def _resolved(self, key: str) -> Profile | None:
        for _ in range(MAX_REDIRECT_HOPS + 1):
            if key in self.profiles:
                return _copy(self.profiles[key])
            if key not in self.redirects:
                return None
            key = self.redirects[key]
        raise Conflict(key, why="redirect chain too long")

    def profile(self, key: str) -> Profile | None:
        return self._resolved(key)

    def save(
        self,
        profile: Profile,
        previous: list[Profile],
        new_keys: list[str],
        event_ids: Sequence[str] = (),
        counters: Sequence[Counter] = (),
    ) -> Profile:
        seen = [e for e in event_ids if e in self.events]
        if seen:
            raise Duplicate(seen[0])
        own = next((p for p in previous if p.key == profile.key), None)
        self._expect_version(profile.key, own.version if own else None)
        for old in previous:
            if old.key != profile.key:
                self._expect_version(old.key, old.version)
        for key in new_keys:
            if key != profile.key and self._exists(key):
                raise Conflict(key)
        saved = _copy(profile)
        saved.version = profile.version + 1
        self.events.update(event_ids)
        self._store(saved)
        self.redirects.pop(saved.key, None)
        for key in [*new_keys, *(k for old in previous if old.key != saved.key for k in [old.key, *old.identifiers])]:
            if key != saved.key:
                self.profiles.pop(key, None)
                self.redirects[key] = saved.key
        self._add(combined(counters))
        self.writes += 1
        return _copy(saved)

    def _exists(self, key: str) -> bool:
        return key in self.profiles or key in self.redirects

    def _save_next_version(self, profile: Profile) -> None:
        """Store ``profile`` as its next version (its version checked by the caller, with the write's others)."""
        saved = _copy(profile)
        saved.version = profile.version + 1
        self._store(saved)

    def _store(self, saved: Profile) -> None:
        self.profiles[saved.key] = saved
        self.index_times[saved.key] = index_time(saved, clock.now())

    def _expect_version(self, key: str, version: int | None) -> None:
        """The condition of a guarded write: the profile at ``key`` still has ``version`` (None: no item)."""
        current = self.profiles.get(key)
        if version is None and self._exists(key):
            raise Conflict(key)
        if version is not None and (current is None or current.version != version):
            raise Conflict(key)

    def change(self, key: str, change: Callable[[Profile], Profile], attempts: int = 8) -> Profile | None:
        profile = self.profile(key)
        if profile is None:
            return None
        updated = change(_copy(profile))
        return profile if updated == profile else self.update_profile(updated)

    def update_profile(self, profile: Profile) -> Profile:
        return self.save(profile, previous=[profile], new_keys=[])

    def linked_to(self, keys: Iterable[str]) -> set[str]:
        found, frontier = set(keys), list(keys)
        while frontier:
            target = frontier.pop()
            for key, canonical in self.redirects.items():
                if canonical == target and key not in found:
                    found.add(key)
                    frontier.append(key)
        return found

    def erase(self, keys: list[str], decision_ids: list[str], interests: Iterable[tuple[str, str]] = ()) -> None:
        for product_id, key in interests:
            self.interests.get((product_id, interest_shard(key)), {}).pop(key, None)
        for key in keys:
            self.profiles.pop(key, None)
            self.redirects.pop(key, None)
            self.tombstones[key] = clock.now()
        for decision_id in decision_ids:
            self.decisions.pop(decision_id, None)

    def erased(self, keys: list[str]) -> dict[str, datetime]:
        return {k: self.tombstones[k] for k in keys if k in self.tombstones}

    def lift_tombstones(self, keys: list[str]) -> None:
        for key in keys:
            self.tombstones.pop(key, None)

    # -- decisions ------------------------------------------------------------------------------------------

    def put_decision(self, decision: Decision, status: str) -> bool:
        try:
            self.commit_decision(decision, status, profile=None)
            return True
        except DecisionExists:
            return False

    def commit_decision(self, decision: Decision, status: str, profile: Profile | None) -> None:
        if decision.decision_id in self.decisions:
            raise DecisionExists(decision.decision_id)
        if profile is not None:
            self._expect_version(profile.key, profile.version)
        record = self.decisions[decision.decision_id] = _Record(status, _copied(decision))
        if profile is not None:
            self._save_next_version(profile)
        self._add(tally(decision, None, record.version()))
        self.writes += 1

    def decision(self, decision_id: str) -> StoredDecision | None:
        record = self.decisions.get(decision_id)
        if record is None:
            return None
        fields = record.fields
        return StoredDecision(record.status, _copied(record.decision), fields.get("claimed_at"), fields.get("claim"))

    def move_decision(
        self,
        decision_id: str,
        from_status: str | tuple[str, ...],
        to_status: str,
        profile: Profile | None = None,
        **fields: str,
    ) -> bool:
        allowed = (from_status,) if isinstance(from_status, str) else from_status
        record = self.decisions.get(decision_id)
        if record is None or record.status not in allowed:
            return False
        if profile is not None:
            self._expect_version(profile.key, profile.version)
            self._save_next_version(profile)
        before = record.version()
        record.status = to_status
        record.fields.update(fields)
        self._add(tally(record.decision, before, record.version()))
        self.writes += 1
        return True

    def claim(self, decision_id: str, token: str) -> bool:
        if self.move_decision(decision_id, "queued", "sending", claim=token, claimed_at=iso(clock.now())):
            return True
        record = self.decisions.get(decision_id)
        return record is not None and record.status == "sending" and record.fields.get("claim") == token

    def annotate_decision(self, decision_id: str, **fields: str) -> bool:
        record = self.decisions.get(decision_id)
        if record is None or next(iter(fields)) in record.fields:
            return False
        before = record.version()
        record.fields.update(fields)
        self._add(tally(record.decision, before, record.version()))
        self.writes += 1
        return True

    def decisions_of(self, key: str) -> list[str]:
        """As the ``by_customer`` index orders them: by the time they were made."""
        mine = [r.decision for r in self.decisions.values() if r.decision.profile_key == key]
        return [d.decision_id for d in sorted(mine, key=lambda d: d.decided_at)]

    def remember_message(self, message_id: str, decision_id: str, address_hash: str) -> None:
        self.messages[message_id] = SentMessage(decision_id, address_hash)

    def message(self, message_id: str) -> SentMessage | None:
        return self.messages.get(message_id)

    # -- counters and the due index -----------------------------------------------------------------------

    def add(self, counters: Iterable[Counter]) -> None:
        """Count what the tally would count of facts this store does not hold (the lab's simulated deliveries)."""
        self._add(counters)

    def _add(self, counters: Iterable[Counter]) -> None:
        for c in counters:
            item = self.counters.setdefault((c.pk, c.sk), {})
            for name, by in ((c.attribute, c.by), *c.also):
                item[name] = item.get(name, Decimal(0)) + by

    # -- catalog ------------------------------------------------------------------------------------------------

    def put_product(self, product: Product) -> Stored:
        stored = self.catalog.get(product.product_id)
        if stored is not None and not newer(product, stored):
            if stored.version == product.version:
                return Stored("repeated", self.replaced.get(product.product_id))
            return Stored("outdated")
        self.catalog[product.product_id] = product
        self.replaced[product.product_id] = stored.state if stored is not None else None
        self.writes += 1
        return Stored("written", self.replaced[product.product_id])

    def put_interests(self, entries: Sequence[IndexEntry], delete: Sequence[tuple[str, str]] = ()) -> None:
        for entry in entries:
            self.interests.setdefault((entry.product_id, entry.shard), {})[entry.profile_key] = entry.expires_at
        for product_id, key in delete:
            self.interests.get((product_id, interest_shard(key)), {}).pop(key, None)
        self.writes += len(entries) + len(delete)

    def interested(self, product_id: str, shard: int, after: str | None, limit: int, now: datetime) -> InterestPage:
        """As a Query with ``Limit`` and a filter: ``limit`` entries read, the expired ones then left out."""
        shard_entries = self.interests.get((product_id, shard), {})
        read = [k for k in sorted(shard_entries) if after is None or k > after][:limit]
        more = len(read) == limit and any(k > read[-1] for k in shard_entries)
        return InterestPage([k for k in read if shard_entries[k] > now], read[-1] if more else None)

    def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        return {p: self.catalog[p] for p in set(product_ids) if p in self.catalog}

    # -- coupon pools (``nextbest.aws.store.coupons``) -----------------------------------------------------

    def claim_coupon(self, campaign_id: str, decision_id: str, at: datetime) -> str:
        held = self.coupon_claims.get(decision_id)
        if held is not None:
            return held
        pool = self.pools.get(campaign_id)
        if not pool:
            raise CouponsGone(campaign_id)
        code = next(iter(pool))
        del pool[code]
        self.coupon_claims[decision_id] = code
        self.coupons_given[(campaign_id, code)] = decision_id
        self.writes += 1
        return code

    def upload_coupons(self, campaign_id: str, codes: Iterable[str]) -> tuple[int, int]:
        unique = list(dict.fromkeys(codes))
        fresh = [c for c in unique if (campaign_id, c) not in self.coupons_given]
        self.pools.setdefault(campaign_id, {}).update(dict.fromkeys(fresh))
        return len(fresh), len(unique) - len(fresh)

    def coupons_left(self, campaign_id: str) -> int:
        return len(self.pools.get(campaign_id, {}))

    def coupon_holder(self, campaign_id: str, code: str) -> str | None:
        return self.coupons_given.get((campaign_id, code))

    def lease(self, limit: Counter, want: Decimal) -> Decimal:
        """As the table grants it: all of ``want`` if there is room, else what is left (an add conditioned on
        the count read)."""
        assert limit.limit is not None
        item = self.counters.setdefault((limit.pk, limit.sk), {})
        granted = max(min(want, limit.limit - item.get(limit.attribute, Decimal(0))), Decimal(0))
        if granted:
            self._add([Counter(limit.pk, limit.sk, granted, attribute=limit.attribute)])
            self.writes += 1
        return granted

    def add_tally(
        self,
        shard: str,
        campaign_id: str,
        counters: Sequence[Counter],
        through: int,
        since: int | None = None,
        before: int | None = None,
    ) -> Tallied:
        """As the table's conditional UpdateItem: the checkpoint must be ``since``, or (``since`` None) absent or
        below ``before``; a refusal returns the checkpoint."""
        found = self.checkpoints.get((shard, campaign_id))
        fresh = found is None or (before is not None and found < before)
        if not (found == since if since is not None else fresh):
            return Tallied(added=False, checkpoint=found)
        self._add(counters)
        self.checkpoints[(shard, campaign_id)] = through
        self.writes += 1
        return Tallied(added=True, created=found is None)

    def fold_closed(self, campaign_id: str, created_before: datetime) -> int:
        """Nothing to fold: this store keeps one total per counter."""
        return 0

    def counts(self, campaign_id: str) -> dict[str, dict[str, Decimal]]:
        """Every statistic of a campaign by counter item, as ``CounterItems.counts`` sums the tally's items."""
        return {
            sk: dict(item)
            for (pk, sk), item in self.counters.items()
            if pk == f"s:{campaign_id}" and not sk.startswith(("HOUR#", "BUDGET"))
        }

    def arm_counts(self, campaign_id: str, variants: list[str]) -> dict[str, tuple[int, int]]:
        counts = {}
        for v in variants:
            item = self.counters.get((f"s:{campaign_id}", f"VARIANT#{v}"), {})
            counts[v] = (int(item.get("sends", 0)), int(item.get("conversions", 0)))
        return counts

    def due(self, shard: int, after: datetime, until: datetime) -> list[str]:
        """As the ``by_due`` index answers: profiles (not redirects, not erased) in index-time order."""
        found = [(t, k) for k, t in self.index_times.items() if t and after < t <= until and k in self.profiles]
        return [k for _, k in sorted(found) if due_shard(k) == shard]
