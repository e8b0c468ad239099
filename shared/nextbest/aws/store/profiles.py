"""Profiles and identity: resolve identifiers through redirects, save a profile with the events it applied
(one conditional write; a transaction only when identities move), read-modify-write under a version, and
erasure's tombstones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from nextbest.aws.store.interests import deletions
from nextbest.aws.store.table import (
    BODY,
    BY_CANONICAL,
    CREDITS,
    DECISION,
    ERASED,
    PROFILE,
    EventMemory,
    Table,
    keyed_digest,
    marker_item,
    profile_item,
    profile_of,
    redirect_item,
)
from nextbest.core import clock
from nextbest.core.clock import iso
from nextbest.core.counters import Counter, dump_credits
from nextbest.core.ports import Conflict, Duplicate
from nextbest.core.profiles import Profile

MAX_REDIRECT_HOPS = 5
"""Redirects are re-pointed on every merge, so a chain longer than this means a concurrent merge: retry."""
TOMBSTONES = ("xk:", "x:")
"""Key prefixes of tombstones: keyed, and unkeyed (written before the erasure key, see ``migrate_tombstones``)."""


class ProfileItems(Table):
    def prefetch(self, keys: Iterable[str]) -> None:
        """Read identity items and tombstones in one consistent BatchGetItem; later lookups hit the cache."""
        wanted = sorted({k for k in keys if k not in self._cache})
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            request = {
                self.table: {
                    "Keys": [
                        {"pk": {"S": k}, "sk": {"S": ERASED if k.startswith(TOMBSTONES) else PROFILE}} for k in chunk
                    ],
                    "ConsistentRead": True,
                }
            }
            for k in chunk:
                self._cache[k] = None
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    self._cache[item["pk"]["S"]] = item
                request = response.get("UnprocessedKeys") or {}

    def prefetch_identities(self, keys: Iterable[str]) -> None:
        """Identity items, then the tombstones (both forms) of the identifiers that have none: what ingest looks up
        for a batch. A known identifier needs no tombstone (erasure deletes the item), and a read of an item that
        does not exist still costs a read unit, so this reads most identifiers once, not three times."""
        keys = list(keys)
        self.prefetch(keys)
        self.prefetch([name for key in keys if self._cache.get(key) is None for name in self.tombstones(key)])

    def resolve(self, keys: list[str]) -> dict[str, Profile | None]:
        """Map each identity key to the profile it belongs to (following redirects), or None if unknown."""
        self.prefetch(keys)
        result: dict[str, Profile | None] = {}
        for key in keys:
            item = self._cache[key]
            hops = 0
            while item is not None and "canonical" in item:
                hops += 1
                if hops > MAX_REDIRECT_HOPS:
                    raise Conflict(key, why="redirect chain too long")
                target = item["canonical"]["S"]
                self.prefetch([target])
                item = self._cache[target]
            result[key] = profile_of(item) if item is not None else None
        return result

    def profile(self, key: str) -> Profile | None:
        self.forget([key])
        return self.resolve([key])[key]

    def save(
        self,
        profile: Profile,
        previous: list[Profile],
        new_keys: list[str],
        event_ids: Sequence[str] = (),
        counters: Sequence[Counter] = (),
    ) -> Profile:
        """Write ``profile`` and make every identifier point at it, in one conditional step.

        ``previous`` are the profiles as read (their versions guard the write); ``new_keys`` are identity
        keys that had no item when read. ``event_ids`` are remembered on the saved profile in the same write
        (``EventMemory``), so an event is applied exactly once however often it is delivered: one already
        remembered by any of ``previous`` raises :class:`Duplicate` naming it, and a concurrent worker applying
        it changes the version, so this write fails with :class:`Conflict` and the retry finds it remembered.
        ``counters`` (an order's credits) ride on the profile item of this write (``credits``), which the stream
        brings to the tally; the profile's next write drops them.
        """
        self.prefetch(p.key for p in previous)  # read by resolve already: their items hold what they remember
        memory = EventMemory.of(self._cache.get(p.key) for p in previous)
        seen = [e for e in event_ids if e in memory]
        if seen:
            raise Duplicate(seen[0])
        memory, markers = memory.remembering(event_ids, clock.now())
        saved = profile.model_copy(update={"version": profile.version + 1})
        puts = [self._put(marker_item(e, clock.now()), expected=None) for e in markers]
        puts += self._identity_writes(saved, previous, new_keys, memory)
        if counters:
            puts[len(markers)]["Put"]["Item"][CREDITS] = {"S": dump_credits(counters)}
        claimed = {p["Put"]["Item"]["pk"]["S"] for p in puts if p["Put"]["Item"]["sk"]["S"] == PROFILE}
        try:
            self._write(puts[:100])
        except Conflict as conflict:
            self.forget(claimed)
            if conflict.failed is not None and conflict.failed < len(markers):
                raise Duplicate(markers[conflict.failed]) from conflict
            raise
        for put in puts:
            item = put["Put"]["Item"]
            if item["sk"]["S"] == PROFILE:
                self._cache[item["pk"]["S"]] = item
        return saved

    def _identity_writes(
        self, saved: Profile, previous: list[Profile], new_keys: list[str], applied: EventMemory
    ) -> list[dict[str, Any]]:
        """The profile under the version read, and a redirect to it from every other identifier: guarded for
        the profiles merged into it and for new keys, unconditional for their older redirects (re-pointed so
        chains stay one hop long)."""
        before = {p.key: p for p in previous}
        own = before.get(saved.key)
        puts = [self._put(profile_item(saved, applied), expected=own.version if own else None)]
        merged = [old for old in previous if old.key != saved.key]
        puts += [self._put(redirect_item(old.key, saved.key), expected=old.version) for old in merged]
        puts += [self._put(redirect_item(key, saved.key), expected=None) for key in new_keys if key != saved.key]
        claimed = {p["Put"]["Item"]["pk"]["S"] for p in puts}
        for old in merged:
            for key in old.identifiers:
                if key not in claimed:
                    puts.append({"Put": {"TableName": self.table, "Item": redirect_item(key, saved.key)}})
                    claimed.add(key)
        return puts

    def change(self, key: str, change: Callable[[Profile], Profile], attempts: int = 8) -> Profile | None:
        """Read-modify-write a profile under its version, retried on conflict; None if it does not exist.

        ``change`` gets a private copy and returns it changed (or unchanged: then nothing is written).
        """
        for _ in range(attempts):
            profile = self.profile(key)
            if profile is None:
                return None
            updated = change(profile.model_copy(deep=True))
            if updated == profile:
                return profile
            try:
                return self.update_profile(updated)
            except Conflict:
                continue
        raise Conflict(key, why=f"kept changing under {attempts} attempts")

    def update_profile(self, profile: Profile) -> Profile:
        """Write back a profile read earlier (no identity change); Conflict if it moved meanwhile."""
        return self.save(profile, previous=[profile], new_keys=[])

    def linked_to(self, keys: Iterable[str]) -> set[str]:
        """Every identity key that leads to any of ``keys``, however many redirects away."""
        found, frontier = set(keys), list(keys)
        while frontier:
            for pk in self._query(BY_CANONICAL, "canonical", frontier.pop()):
                if pk not in found:
                    found.add(pk)
                    frontier.append(pk)
        return found

    def erase(self, keys: list[str], decision_ids: list[str], interests: Iterable[tuple[str, str]] = ()) -> None:
        """Delete identity items, decisions and interest index entries, and leave a keyed tombstone for every
        identifier."""
        requests = [{"DeleteRequest": {"Key": {"pk": {"S": k}, "sk": {"S": PROFILE}}}} for k in keys]
        decisions = [(f"d:{d}", sk) for d in decision_ids for sk in (DECISION, BODY)]  # a record and its body
        requests += [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for pk, sk in decisions]
        requests += deletions(interests)
        requests += [{"PutRequest": {"Item": _tombstone_item(self.tombstones(k)[0], iso(clock.now()))}} for k in keys]
        self._batch_write(requests)
        self.forget(keys)

    def erased(self, keys: list[str]) -> dict[str, datetime]:
        """Which of these identity keys belong to an erased person, and when they were erased (a tombstone in
        either form)."""
        self.prefetch(name for k in keys for name in self.tombstones(k))
        found = {}
        for key in keys:
            items = [self._cache.get(name) for name in self.tombstones(key)]
            times = [datetime.fromisoformat(item["erased_at"]["S"]) for item in items if item is not None]
            if times:
                found[key] = max(times)
        return found

    def lift_tombstones(self, keys: list[str]) -> None:
        """The person came back and consented again: their identifiers may be used anew."""
        for key in keys:
            for name in self.tombstones(key):
                self.client.delete_item(TableName=self.table, Key={"pk": {"S": name}, "sk": {"S": ERASED}})
                self._cache[name] = None

    def migrate_tombstones(self) -> int:
        """Rewrite every unkeyed tombstone (``x:<sha256>``, written before the erasure key) in the keyed form and
        delete it; returns how many. Run once after upgrading (``nextbest tombstones migrate``); ingest reads both
        forms meanwhile, so erased people stay erased during the migration."""
        if self._erasure_key is None:
            raise RuntimeError("this store was built without the erasure key: it cannot write tombstones")
        secret = self._erasure_key()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :erased AND begins_with(pk, :unkeyed)",
            "ExpressionAttributeValues": {":erased": {"S": ERASED}, ":unkeyed": {"S": "x:"}},
        }
        moved = 0
        while True:
            page = self.client.scan(**kwargs)
            old = page.get("Items", [])
            keyed = [_tombstone_item("xk:" + keyed_digest(i["pk"]["S"][2:], secret), i["erased_at"]["S"]) for i in old]
            self._batch_write([{"PutRequest": {"Item": item}} for item in keyed])  # written before any is deleted
            self._batch_write([{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in old])
            moved += len(old)
            if "LastEvaluatedKey" not in page:
                return moved
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _tombstone_item(name: str, erased_at: str) -> dict[str, Any]:
    return {"pk": {"S": name}, "sk": {"S": ERASED}, "erased_at": {"S": erased_at}}
