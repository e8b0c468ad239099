"""The DynamoDB table behind profiles, identity links and decisions.

One table, keyed for the access patterns:

========================  =============  ==================================================================
pk                        sk             what
========================  =============  ==================================================================
``c:cus_42`` / ``a:…``    ``PROFILE``    the profile itself (``doc``, ``version``) at its canonical key, or
``e:…`` / ``p:…``                        a redirect (``canonical``) from every other identifier of that person
``d:<decision id>``       ``DECISION``   a decision record with its ``status`` (claimed conditionally)
``ev:<event id>``         ``EVENT``      an applied event, remembered for 7 days (TTL ``expires_at``)
``x:<sha256 of a key>``    ``ERASED``     tombstone of an erased identifier (hashed: no personal data is kept)
``m:<provider msg id>``   ``MESSAGE``    the decision a sent push belongs to, for 7 days (TTL ``expires_at``)
========================  =============  ==================================================================

Every access is by key, except finding a customer's decisions (the sparse ``by_customer`` index, for
explanations and erasure). Every write that can race is conditional.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.core import clock
from nextbest.core.clock import iso
from nextbest.core.commands import SWEEP_SHARDS
from nextbest.core.counters import Counter, combined
from nextbest.core.ports import Conflict, DecisionExists, Duplicate
from nextbest.core.profiles import Profile

PROFILE = "PROFILE"
DECISION = "DECISION"
ERASED = "ERASED"
MESSAGE = "MESSAGE"
BY_CUSTOMER = "by_customer"
"""Sparse index of decision records by the identity key they were made for."""
BY_CANONICAL = "by_canonical"
BY_SWEEP = "by_sweep"
"""Sparse index of the profiles of buyers, spread over ``SWEEP_SHARDS`` partitions: the daily sweep reads
only them, never the redirects, decisions and event markers around them."""
MAX_REDIRECT_HOPS = 5


EVENT = "EVENT"
EVENT_MEMORY = timedelta(days=7)
"""How long an event id is remembered: beyond EventBridge's 24 h of retries and SQS's 4 days of retention."""


class Store:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = table_name
        self._client = client
        self._cache: dict[str, dict[str, Any] | None] = {}

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    # -- identity and profiles -------------------------------------------------------------------------

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Drop cached items (all of them, or those of ``keys`` after a conflict)."""
        if keys is None:
            self._cache.clear()
        for key in keys or ():
            self._cache.pop(key, None)

    def prefetch(self, keys: Iterable[str]) -> None:
        """Read identity items and tombstones in one consistent BatchGetItem; later lookups hit the cache."""
        wanted = sorted({k for k in keys if k not in self._cache})
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            request = {
                self.table: {
                    "Keys": [{"pk": {"S": k}, "sk": {"S": ERASED if k.startswith("x:") else PROFILE}} for k in chunk],
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
                    raise Conflict(f"redirect chain from {key} is too long")
                target = item["canonical"]["S"]
                self.prefetch([target])
                item = self._cache[target]
            result[key] = _profile(item) if item is not None else None
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
        keys that had no item when read. A marker for each of ``event_ids`` is written in the same
        transaction, so an event is applied exactly once however often it is delivered. A lost race
        raises :class:`Conflict`; an event already applied raises :class:`Duplicate` naming it.
        """
        saved = profile.model_copy(update={"version": profile.version + 1})
        before = {p.key: p for p in previous}
        puts: list[dict[str, Any]] = []
        expires = str(int((clock.now() + EVENT_MEMORY).timestamp()))
        for event_id in event_ids:
            marker = {"pk": {"S": f"ev:{event_id}"}, "sk": {"S": EVENT}, "expires_at": {"N": expires}}
            puts.append(self._put(marker, expected=None))
        own = before.get(saved.key)
        puts.append(self._put(_profile_item(saved), expected=own.version if own else None))
        for old in previous:
            if old.key != saved.key:
                puts.append(self._put(_redirect(old.key, saved.key), expected=old.version))
        for key in new_keys:
            if key != saved.key:
                puts.append(self._put(_redirect(key, saved.key), expected=None))
        claimed = {p["Put"]["Item"]["pk"]["S"] for p in puts if p["Put"]["Item"]["sk"]["S"] == PROFILE}
        for old in previous:
            if old.key == saved.key:
                continue
            for key in old.identifiers:
                if key not in claimed:  # repoint older redirects so chains stay one hop long
                    puts.append({"Put": {"TableName": self.table, "Item": _redirect(key, saved.key)}})
                    claimed.add(key)
        puts += [c.update(self.table) for c in combined(counters)]  # e.g. an order's attribution
        try:
            self._write(puts[:100])
        except Conflict as conflict:
            self.forget(claimed)
            if conflict.failed is not None and conflict.failed < len(event_ids):
                raise Duplicate(event_ids[conflict.failed]) from conflict
            raise
        for put in puts:
            item = put.get("Put", {}).get("Item", {"sk": {"S": ""}})
            if item["sk"]["S"] == PROFILE:
                self._cache[item["pk"]["S"]] = item
        return saved

    # -- erasure --------------------------------------------------------------------------------------

    def decisions_of(self, key: str) -> list[str]:
        """Ids of every decision made for this identity key."""
        return [pk[2:] for pk in self._query(BY_CUSTOMER, "customer", key)]

    def linked_to(self, keys: Iterable[str]) -> set[str]:
        """Every identity key that leads to any of ``keys``, however many redirects away."""
        found, frontier = set(keys), list(keys)
        while frontier:
            for pk in self._query(BY_CANONICAL, "canonical", frontier.pop()):
                if pk not in found:
                    found.add(pk)
                    frontier.append(pk)
        return found

    def _query(self, index: str, attribute: str, value: str) -> list[str]:
        keys: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#a = :v",
            "ExpressionAttributeNames": {"#a": attribute},
            "ExpressionAttributeValues": {":v": {"S": value}},
        }
        while True:
            page = self.client.query(**kwargs)
            keys.extend(item["pk"]["S"] for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return keys
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def erase(self, keys: list[str], decision_ids: list[str]) -> None:
        """Delete identity items and decisions, and leave a hashed tombstone for every identifier."""
        requests = [{"DeleteRequest": {"Key": {"pk": {"S": k}, "sk": {"S": PROFILE}}}} for k in keys]
        requests += [{"DeleteRequest": {"Key": {"pk": {"S": f"d:{d}"}, "sk": {"S": DECISION}}}} for d in decision_ids]
        requests += [
            {
                "PutRequest": {
                    "Item": {"pk": {"S": tombstone(k)}, "sk": {"S": ERASED}, "erased_at": {"S": iso(clock.now())}}
                }
            }
            for k in keys
        ]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            while pending:
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        self.forget(keys)

    def erased(self, keys: list[str]) -> set[str]:
        """Which of these identity keys belong to an erased person."""
        self.prefetch(tombstone(k) for k in keys)
        return {k for k in keys if self._cache.get(tombstone(k)) is not None}

    def lift_tombstones(self, keys: list[str]) -> None:
        """The person came back and consented again: their identifiers may be used anew."""
        for key in keys:
            self.client.delete_item(TableName=self.table, Key={"pk": {"S": tombstone(key)}, "sk": {"S": ERASED}})
            self._cache[tombstone(key)] = None

    def _write(self, puts: list[dict[str, Any]]) -> None:
        """All of ``puts`` or none: one PutItem, or a transaction when identities move."""
        try:
            if len(puts) == 1:
                self.client.put_item(**puts[0]["Put"])
            else:
                self.client.transact_write_items(TransactItems=puts)
        except ClientError as error:
            if aws.error_code(error) in CONDITION_FAILED:
                raise Conflict(puts[0]["Put"]["Item"]["pk"]["S"], failed=_failed_write(error)) from error
            raise

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
        raise Conflict(f"{key} kept changing under {attempts} attempts")

    def update_profile(self, profile: Profile) -> Profile:
        """Write back a profile read earlier (no identity change); Conflict if it moved meanwhile."""
        return self.save(profile, previous=[profile], new_keys=[])

    def _put(self, item: dict[str, Any], expected: int | None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(expected)}}
        return {"Put": put}

    # -- decisions -------------------------------------------------------------------------------------

    def put_decision(self, decision_id: str, status: str, doc: str, customer: str, decided_at: datetime) -> bool:
        """Record a decision once; False if a decision with this id already exists.

        ``customer``/``decided_at`` put it in the ``by_customer`` index: explanation and erasure find a
        customer's decisions there.
        """
        try:
            self.commit_decision(decision_id, status, doc, customer, decided_at, profile=None)
            return True
        except DecisionExists:
            return False

    def commit_decision(
        self,
        decision_id: str,
        status: str,
        doc: str,
        customer: str,
        decided_at: datetime,
        profile: Profile | None,
        counters: Sequence[Counter] = (),
    ) -> None:
        """Record a decision, the profile it was checked against and the counters it takes, all or nothing.

        Raises DecisionExists if the decision was made before, Conflict if the profile changed since it was
        read (decide again), or Conflict with ``refusal`` if a counter's limit is reached.
        """
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": {"S": f"d:{decision_id}"},
                        "sk": {"S": DECISION},
                        "status": {"S": status},
                        "doc": {"S": doc},
                        "customer": {"S": customer},
                        "decided_at": {"S": iso(decided_at)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if profile is not None:
            saved = profile.model_copy(update={"version": profile.version + 1})
            items.append(self._put(_profile_item(saved), expected=profile.version))
        items += [c.update(self.table) for c in counters]
        try:
            self._write(items)
        except Conflict as conflict:
            if conflict.failed == 0:
                raise DecisionExists(decision_id) from conflict
            first_counter = 2 if profile is not None else 1
            if conflict.failed is not None and conflict.failed >= first_counter:
                raise Conflict(customer, conflict.failed, counters[conflict.failed - first_counter].refusal) from None
            self.forget([customer])
            raise
        if profile is not None:
            self.forget([profile.key])

    def arm_counts(self, campaign_id: str, variants: list[str]) -> dict[str, tuple[int, int]]:
        """(sends, conversions) per variant of a campaign, from its counter items."""
        keys = [{"pk": {"S": f"s:{campaign_id}"}, "sk": {"S": f"VARIANT#{v}"}} for v in variants]
        response = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys}})
        counts = {v: (0, 0) for v in variants}
        for item in response["Responses"].get(self.table, []):
            variant = item["sk"]["S"].removeprefix("VARIANT#")
            counts[variant] = (int(item.get("sends", {}).get("N", 0)), int(item.get("conversions", {}).get("N", 0)))
        return counts

    def buyers(self, shard: int, start: dict[str, Any] | None, limit: int = 200) -> tuple[list[str], Any]:
        """One page of the profile keys of buyers in a sweep shard, and where to continue (or None)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_SWEEP,
            "KeyConditionExpression": "sweep = :s",
            "ExpressionAttributeValues": {":s": {"S": str(shard)}},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self.client.query(**kwargs)
        return [item["pk"]["S"] for item in page.get("Items", [])], page.get("LastEvaluatedKey")

    def decision(self, decision_id: str) -> tuple[str, str] | None:
        """(status, doc) of a decision, read consistently."""
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"d:{decision_id}"}, "sk": {"S": DECISION}},
            ConsistentRead=True,
        ).get("Item")
        return (item["status"]["S"], item["doc"]["S"]) if item else None

    def remember_message(self, message_id: str, decision_id: str, address_hash: str) -> None:
        """Which decision (and which hashed address) a provider's message id belongs to, for feedback that
        names only the message (SNS push delivery failures). Kept ``EVENT_MEMORY``; holds no personal data."""
        expires = str(int((clock.now() + EVENT_MEMORY).timestamp()))
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"m:{message_id}"},
                "sk": {"S": MESSAGE},
                "decision": {"S": decision_id},
                "address": {"S": address_hash},
                "expires_at": {"N": expires},
            },
        )

    def message(self, message_id: str) -> tuple[str, str] | None:
        """(decision id, address hash) of a message remembered by :meth:`remember_message`."""
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": f"m:{message_id}"}, "sk": {"S": MESSAGE}}, ConsistentRead=True
        ).get("Item")
        return (item["decision"]["S"], item["address"]["S"]) if item else None

    def annotate_decision(self, decision_id: str, counters: Sequence[Counter] = (), **fields: str) -> bool:
        """Record facts about a decision (opened_at, clicked_at…) without touching its status, the first
        time only: False if the first field is already set. ``counters`` are added with it, so a fact is
        counted once however often its notification arrives."""
        first = next(iter(fields))
        return self._update_decision(decision_id, None, fields, counters, unless=first)

    def move_decision(
        self,
        decision_id: str,
        from_status: str | tuple[str, ...],
        to_status: str,
        counters: Sequence[Counter] = (),
        **fields: str,
    ) -> bool:
        """Compare-and-set a decision's status (the claim that makes delivery happen at most once), adding
        ``counters`` in the same write when it succeeds."""
        allowed = (from_status,) if isinstance(from_status, str) else from_status
        return self._update_decision(decision_id, allowed, {"status": to_status, **fields}, counters)

    def _update_decision(
        self,
        decision_id: str,
        allowed: tuple[str, ...] | None,
        fields: dict[str, str],
        counters: Sequence[Counter] = (),
        unless: str | None = None,
    ) -> bool:
        """SET ``fields`` on an existing decision, only while its status is one of ``allowed`` if given and
        while ``unless`` is not yet set; False when that condition fails."""
        names = {f"#x{i}": name for i, name in enumerate(sorted(fields))}
        values = {f":x{i}": {"S": fields[name]} for i, name in enumerate(sorted(fields))}
        condition = "attribute_exists(pk)"
        if allowed is not None:
            names["#status"] = "status"
            values |= {f":f{i}": {"S": s} for i, s in enumerate(allowed)}
            condition = "#status IN (" + ", ".join(f":f{i}" for i in range(len(allowed))) + ")"
        if unless is not None:
            names["#unless"] = unless
            condition += " AND attribute_not_exists(#unless)"
        update = {
            "TableName": self.table,
            "Key": {"pk": {"S": f"d:{decision_id}"}, "sk": {"S": DECISION}},
            "UpdateExpression": "SET " + ", ".join(f"{n} = :{n[1:]}" for n in names if n[1] == "x"),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        try:
            if counters:
                items = [{"Update": update}, *(c.update(self.table) for c in combined(counters))]
                self.client.transact_write_items(TransactItems=items)
            else:
                self.client.update_item(**update)
            return True
        except ClientError as error:
            if aws.error_code(error) in CONDITION_FAILED and _failed_write(error) == 0:
                return False
            raise


CONDITION_FAILED = ("ConditionalCheckFailedException", "TransactionCanceledException")


def _failed_write(error: ClientError) -> int | None:
    """Which write's condition failed: 0 for a single write, the index in a transaction, None if unknown."""
    if aws.error_code(error) == "ConditionalCheckFailedException":
        return 0
    reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]  # type: ignore[attr-defined]
    return reasons.index("ConditionalCheckFailed") if "ConditionalCheckFailed" in reasons else None


def tombstone(key: str) -> str:
    return "x:" + hashlib.sha256(key.encode()).hexdigest()


def _profile(item: dict[str, Any]) -> Profile:
    profile = Profile.model_validate_json(item["doc"]["S"])
    profile.version = int(item["version"]["N"])
    return profile


def _profile_item(profile: Profile) -> dict[str, Any]:
    item = {
        "pk": {"S": profile.key},
        "sk": {"S": PROFILE},
        "version": {"N": str(profile.version)},
        "doc": {"S": profile.model_dump_json(exclude_defaults=True)},
    }
    if profile.order_count:
        item["sweep"] = {"S": str(int(hashlib.sha256(profile.key.encode()).hexdigest()[:8], 16) % SWEEP_SHARDS)}
    return item


def _redirect(key: str, canonical: str) -> dict[str, Any]:
    return {"pk": {"S": key}, "sk": {"S": PROFILE}, "canonical": {"S": canonical}}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
