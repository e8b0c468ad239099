"""The DynamoDB table behind profiles, identity links and decisions.

One table, keyed for the access patterns:

========================  =============  ==================================================================
pk                        sk             what
========================  =============  ==================================================================
``c:cus_42`` / ``a:…``    ``PROFILE``    the profile itself (``doc``: compressed JSON, ``version``, ``applied``: the
``e:…`` / ``p:…``                        events applied to it) at its canonical key, or a redirect
                                         (``canonical``) from every other identifier of that person
``d:<decision id>``       ``DECISION``   a decision record with its ``status`` (claimed conditionally), for
                                         ``DECISION_RETENTION`` (TTL ``expires_at``)
``d:<decision id>``       ``BODY``       its rendered messages (compressed), written once with it, same TTL
``xk:<keyed hash>``        ``ERASED``     tombstone of an erased identifier (``tombstone``: a keyed hash, no personal
                                         data is kept; ``x:<sha256 of a key>`` is the unkeyed form written before)
``m:<provider msg id>``   ``MESSAGE``    the decision a sent push belongs to, for 7 days (TTL ``expires_at``)
========================  =============  ==================================================================

Coupon pools (``cp:``, ``cu:`` and a decision's ``COUPON`` claim) are described in ``nextbest.aws.store.coupons``, the
catalog (``cat:``) in ``nextbest.aws.store.catalog`` and the interest index (``int:``) in
``nextbest.aws.store.interests``.

Every access is by key, except finding a customer's decisions (the sparse ``by_customer`` index, for
explanations and erasure) and the profiles due now (the sparse ``by_due`` index: a profile with pending triggers
carries ``due_shard`` and ``due_at``, ``nextbest.core.due``). Every write that can race is conditional.

An event is applied exactly once because the profile it changes remembers it: ``applied`` holds a short digest of
every event applied to the profile in the last ``EVENT_MEMORY`` (up to ``REMEMBERED_EVENTS`` of them), written in
the same conditional write as the change, so the common case (one event, one existing profile) is a single PutItem
of about 1 KB instead of a transaction of the profile and a marker item (twice the units, for each). A profile with
more events than that in a week gets a marker item per event (``ev:<event id>`` / ``EVENT``, TTL ``expires_at``)
for the week after (``markers_until``).

What expires (DynamoDB TTL on ``expires_at``, deleted within days of the time): event and push message markers, decision
records, and the profiles of cookies nobody ever identified (``ANONYMOUS_RETENTION`` after their last event). A
profile linked to other identifiers lives until ``customer.erased``: a redirect to a profile deleted under it would
hold the identifier (an e-mail address) with nothing left to erase it through.
The redirects of cookies and device tokens expire 13 months after they were linked (``redirect_item``).
Counters (no personal data) and tombstones (what keeps an erased person erased) are kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.core import clock
from nextbest.core.due import due_shard, index_time, to_index
from nextbest.core.ports import Conflict
from nextbest.core.profiles import Profile

PROFILE = "PROFILE"
DECISION = "DECISION"
BODY = "BODY"
ERASED = "ERASED"
MESSAGE = "MESSAGE"
CREDITS = "credits"
"""The attribute of a profile item carrying the credits of the orders its write applied, for the tally
(``nextbest.aws.store.stream``); the profile's next write drops it (a Put replaces the item, an update removes it:
``OPTIONAL_ATTRIBUTES``), so each write's credits are counted once."""
BY_CUSTOMER = "by_customer"
"""Sparse index of decision records by the identity key they were made for."""
BY_CANONICAL = "by_canonical"
"""Sparse index of redirect items by the key they point to: erasure finds every identifier with it."""
BY_SWEEP = "by_sweep"
"""The daily sweep's index of buyers, no longer read or written (lapse checks are triggers in ``by_due``). It stays
declared for one release: CloudFormation updates a table's indexes through UpdateTable, which creates or deletes
one global secondary index at a time, and this release creates ``by_due``."""
BY_DUE = "by_due"
"""Sparse index of the profiles with pending triggers, by shard and index time: the minute's poll reads it."""
EVENT_MEMORY = timedelta(days=7)
"""How long an event id (or a push message id) is remembered: beyond EventBridge's 24 h of retries and SQS's
4 days of retention."""
REMEMBERED_EVENTS = 256
"""At most this many events are remembered in a profile item (3 KB). A profile that receives more within
``EVENT_MEMORY`` (a bot, a shop's "guest" customer id used for every till order) is remembered the old way for a
week: a marker item per event, written in a transaction with the profile (``EventMemory.remembering``)."""
OPTIONAL_ATTRIBUTES = ("due_shard", "due_at", "expires_at", CREDITS)
"""Attributes a profile item carries only in some states (``profile_item``): an update of the profile removes them
when its new state has none."""
EVENT = "EVENT"
DECISION_RETENTION = timedelta(days=180)
"""How long a decision record is kept. Everything that reads one does so long before: deliver within the queues'
4 days, feedback on SES and SMS events (hours to days; a click after half a year is not counted), attribution
and cooldowns never (they read the profile's own message log, and the counters keep every total), and
``nextbest explain`` gets six months of history. Reports read the counters, which are kept."""
ANONYMOUS_RETENTION = timedelta(days=395)
"""A profile known by a single cookie and nothing else reaches no one: it is kept so that browsing joins the
person when they identify, for 13 months after its last event (the lifetime the CNIL accepts for an audience
cookie), longer than any campaign looks back (win-back: 120 days)."""
CONDITION_FAILED = ("ConditionalCheckFailedException", "TransactionCanceledException")
TRANSACTION_ATTEMPTS = 4
"""How often a transaction cancelled by a concurrent write is tried (with jittered backoff: ~50-400 ms in all)."""


class Table:
    """The client, a read cache of identity items for one invocation, and the conditional writes every kind of
    access shares (one transaction may hold a decision, a profile and counters)."""

    def __init__(self, table_name: str, client: Any = None, erasure_key: Callable[[], bytes] | None = None) -> None:
        self.table = table_name
        self._client = client
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._erasure_key = erasure_key
        """The secret tombstones are keyed with (``nextbest.aws.secrets.erasure_key``); only ingest needs it."""

    def tombstones(self, key: str) -> tuple[str, str]:
        """The tombstone of an identity key, and the unkeyed form written before (read, never written)."""
        if self._erasure_key is None:
            raise RuntimeError("this store was built without the erasure key: it cannot read or write tombstones")
        return tombstone(key, self._erasure_key()), legacy_tombstone(key)

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """Drop cached items (all of them, or those of ``keys`` after a conflict)."""
        if keys is None:
            self._cache.clear()
        for key in keys or ():
            self._cache.pop(key, None)

    def _write(self, puts: list[dict[str, Any]]) -> None:
        """All of ``puts`` or none: one PutItem (or UpdateItem), or a transaction when several items must move
        together."""
        try:
            if len(puts) == 1 and "Put" in puts[0]:
                self._retried(lambda: self.client.put_item(**puts[0]["Put"]))
            elif len(puts) == 1:
                self._retried(lambda: self.client.update_item(**puts[0]["Update"]))
            else:
                self._transact(puts)
        except ClientError as error:
            if aws.error_code(error) in CONDITION_FAILED:
                raise Conflict(_written_key(puts[0]), failed=failed_write(error)) from error
            raise

    def _transact(self, items: list[dict[str, Any]]) -> None:
        self._retried(lambda: self.client.transact_write_items(TransactItems=items))

    def _retried(self, write: Callable[[], Any]) -> Any:
        """A write, tried again when DynamoDB refused it only because a transaction was writing the same item
        (a transaction cancelled with ``TransactionConflict``, a single write's ``TransactionConflictException``:
        botocore retries neither). A failed condition is the caller's to handle, and so is a conflict that outlasts
        the attempts."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                return write()
            except ClientError as error:
                if attempt == TRANSACTION_ATTEMPTS or not conflicted(error):
                    raise
                time.sleep(random.uniform(0, 0.025 * 2**attempt))
        raise AssertionError("unreachable")

    def _next_version(self, profile: Profile) -> dict[str, Any]:
        """The Update that saves ``profile`` as its next version, only if it still has the version it was read at.
        An update, not a Put, so the events the profile remembers (``applied``, ingest's) are kept untouched."""
        item = profile_item(profile.model_copy(update={"version": profile.version + 1}))
        values = {k: v for k, v in item.items() if k not in ("pk", "sk")}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        removed = {f"#r{i}": name for i, name in enumerate(a for a in OPTIONAL_ATTRIBUTES if a not in values)}
        expression = "SET " + ", ".join(f"{n} = :a{i}" for i, n in enumerate(names))
        if removed:
            expression += " REMOVE " + ", ".join(removed)
        update = {
            "TableName": self.table,
            "Key": {"pk": item["pk"], "sk": item["sk"]},
            "UpdateExpression": expression,
            "ConditionExpression": "version = :v",
            "ExpressionAttributeNames": names | removed,
            "ExpressionAttributeValues": {f":a{i}": v for i, v in enumerate(values.values())}
            | {":v": {"N": str(profile.version)}},
        }
        return {"Update": update}

    def _put(self, item: dict[str, Any], expected: int | None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": item}
        if expected is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(expected)}}
        return {"Put": put}

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """Puts and deletes, 25 a BatchWriteItem (its most); what DynamoDB leaves unprocessed is sent again."""
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            while pending:
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def _query(self, index: str, attribute: str, value: str) -> list[str]:
        return self._keys(
            {
                "TableName": self.table,
                "IndexName": index,
                "KeyConditionExpression": "#a = :v",
                "ExpressionAttributeNames": {"#a": attribute},
                "ExpressionAttributeValues": {":v": {"S": value}},
            }
        )

    def _keys(self, kwargs: dict[str, Any]) -> list[str]:
        """The partition keys of every item a Query returns, page after page."""
        keys: list[str] = []
        while True:
            page = self.client.query(**kwargs)
            keys.extend(item["pk"]["S"] for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return keys
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def conflicted(error: ClientError) -> bool:
    """A write refused because of a concurrent transaction on one of its items, and for no other reason."""
    if aws.error_code(error) == "TransactionConflictException":
        return True
    reasons = {r.get("Code") for r in error.response.get("CancellationReasons", [])}  # type: ignore[attr-defined]
    return (
        aws.error_code(error) == "TransactionCanceledException"
        and "TransactionConflict" in reasons
        and reasons <= {"TransactionConflict", "None", None}
    )


def _written_key(write: dict[str, Any]) -> str:
    """The partition key a Put or an Update of a transaction writes."""
    if "Put" in write:
        return str(write["Put"]["Item"]["pk"]["S"])
    return str(write["Update"]["Key"]["pk"]["S"])


def failed_write(error: ClientError) -> int | None:
    """Which write's condition failed: 0 for a single write, the index in a transaction, None if unknown."""
    if aws.error_code(error) == "ConditionalCheckFailedException":
        return 0
    reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]  # type: ignore[attr-defined]
    return reasons.index("ConditionalCheckFailed") if "ConditionalCheckFailed" in reasons else None


def tombstone(key: str, secret: bytes) -> str:
    """A keyed hash of an erased identity key: whoever reads the table but not the secret cannot test whether an
    address was erased (an unkeyed hash of a known address is one computation away).

    It is the HMAC of the key's sha256, not of the key itself, so an unkeyed tombstone written before converts
    to it without the address (``ProfileItems.migrate_tombstones``).
    """
    return "xk:" + keyed_digest(hashlib.sha256(key.encode()).hexdigest(), secret)


def keyed_digest(digest: str, secret: bytes) -> str:
    return hmac.new(secret, digest.encode(), hashlib.sha256).hexdigest()


def legacy_tombstone(key: str) -> str:
    """The unkeyed tombstone of releases before the erasure key: read during the transition, never written."""
    return "x:" + hashlib.sha256(key.encode()).hexdigest()


DICTIONARY = (
    b'"fallback_of":"coupon":"offer_cost":"outcome":"reason":"candidates":"model_versions":"scores":"defer_until":'
    b'"propensity":"value":"group":"decided_at":"trigger_due_at":"profile_key":"action":"send","none","holdout",'
    b'"key":"c:"identifiers":["a:"e:"p:"version":"first_name":"time_zone":"email_status":"soft_bounces":'
    b'"last_engaged_at":"phone":"stamps":"consent":{"sms":{"push":{"email":{"granted":true,"source":"signup",'
    b'"withdrawn_at":"address":"cart":{"items":[{"quantity":1,"unit_price":"name":"currency":"USD","updated_at":'
    b'"orders":[{"order_id":"total":"order_count":"first_order_at":"last_order_at":"dates":{"occurrences":{'
    b'"event_id":"properties":{"undeliverable":[],"claimed":[],"categories":{"products":{"triggers":{'
    b'"cart_abandoned":"browse_abandoned":"post_purchase":"lapse":"handled":{"messages":[{"decision_id":'
    b'"campaign_id":"channel":"email","at":"variant":"held_out":true,"global_control":"step":1,"conflict_group":'
    b'"fulfilment":"converted_at":"revenue":"credit_until":"fallbacks":[{"trigger":"views":[{"product_id":"sku-'
    b'"category":"at":"2026-01-01T00:00:00.000000Z"},{"'
)
"""A preset dictionary (zlib's ``zdict``) of the names and values profile and decision documents repeat. A document
of a few hundred bytes has not yet seen the strings it could refer back to; with them given, a profile compresses to
about a sixth less, and a sixth more of them fit in one write unit (1 KB). Never edit it: a document names its
dictionary by its Adler-32 checksum (``DICTIONARIES``), so a better one is added beside it, and documents written
without one (plain zlib) still read."""
DICTIONARIES = {zlib.adler32(DICTIONARY): DICTIONARY}
_FDICT = 0x20
"""The bit of a zlib stream's second byte that says a dictionary's checksum follows the header (RFC 1950)."""


def compress(raw: bytes) -> bytes:
    """A document as stored: zlib at its best level, with the preset dictionary."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    return packer.compress(raw) + packer.flush()


def decompress(data: bytes) -> bytes:
    """What :func:`compress` (or plain ``zlib.compress``, as documents were written before) made of it."""
    if len(data) > 6 and data[1] & _FDICT:
        unpacker = zlib.decompressobj(zdict=DICTIONARIES[int.from_bytes(data[2:6], "big")])
        return unpacker.decompress(data) + unpacker.flush()
    return zlib.decompress(data)


def document(item: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a profile or decision item (compressed, or plain as written before compression), as
    boto3 reads it (binary as bytes) or as a Lambda stream event carries it (binary as base64 text)."""
    doc = item["doc"]
    if "S" in doc:
        return dict(json.loads(doc["S"]))
    raw = doc["B"]
    return dict(json.loads(decompress(base64.b64decode(raw) if isinstance(raw, str) else raw)))


def profile_of(item: dict[str, Any]) -> Profile:
    profile = Profile.model_validate(document(item))
    profile.version = int(item["version"]["N"])
    return profile


def profile_item(profile: Profile, applied: EventMemory | None = None) -> dict[str, Any]:
    """A profile as stored: its JSON compressed (a profile's JSON shrinks about threefold, and write units are
    counted per KB), and ``applied`` when given (ingest's writes; others keep what is stored)."""
    item = {
        "pk": {"S": profile.key},
        "sk": {"S": PROFILE},
        "version": {"N": str(profile.version)},
        "doc": {"B": compress(profile.model_dump_json(exclude_defaults=True).encode())},
    }
    if applied is not None:
        item |= applied.attributes()
    due = index_time(profile, clock.now())
    if due is not None:
        item["due_shard"] = {"S": str(due_shard(profile.key))}
        item["due_at"] = {"S": to_index(due)}
    if profile.key.startswith("a:") and profile.identifiers == [profile.key] and profile.last_event_at:
        item["expires_at"] = {"N": str(int((profile.last_event_at + ANONYMOUS_RETENTION).timestamp()))}
    return item


APPLIED = "applied"
MARKERS_UNTIL = "markers_until"
_ENTRY = struct.Struct(">8sI")  # an event id's digest, and when it was applied (epoch seconds)


def event_digest(event_id: str) -> bytes:
    """8 bytes of BLAKE2b: a collision between two of a profile's 256 remembered events is a 1-in-10^15 event."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


@dataclass(frozen=True)
class EventMemory:
    """The events applied to one profile recently (``applied`` on its item: digest -> when applied), and until when
    new events are remembered by marker items instead (``markers_until``, epoch seconds; 0: they are not)."""

    entries: dict[bytes, int] = field(default_factory=dict)
    markers_until: int = 0

    @classmethod
    def of(cls, items: Iterable[dict[str, Any] | None]) -> EventMemory:
        """Everything the items remember (a merge keeps the memories of every profile it joins)."""
        entries: dict[bytes, int] = {}
        until = 0
        for item in items:
            for digest, at in _ENTRY.iter_unpack((item or {}).get(APPLIED, {}).get("B", b"")):
                entries[digest] = max(at, entries.get(digest, 0))
            until = max(until, int((item or {}).get(MARKERS_UNTIL, {}).get("N", 0)))
        return cls(entries, until)

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and event_digest(event_id) in self.entries

    def remembering(self, event_ids: Sequence[str], now: datetime) -> tuple[EventMemory, list[str]]:
        """This memory with ``event_ids`` added and those older than ``EVENT_MEMORY`` forgotten; and the events that
        need a marker item instead: all of them while the profile is in marker mode, or when they do not fit (which
        starts it). Nothing is ever forgotten before its week is over, so a redelivery is always recognised: by the
        memory, or by its marker's condition."""
        at, week = int(now.timestamp()), int(EVENT_MEMORY.total_seconds())
        entries = {d: t for d, t in self.entries.items() if t >= at - week}
        if self.markers_until > at or len(entries) + len(event_ids) > REMEMBERED_EVENTS:
            return EventMemory(entries, at + week), list(event_ids)
        return EventMemory(entries | {event_digest(e): at for e in event_ids}), []

    def attributes(self) -> dict[str, Any]:
        """The attributes of a profile item that hold this memory."""
        found: dict[str, Any] = {}
        if self.entries:
            found[APPLIED] = {"B": b"".join(_ENTRY.pack(d, at) for d, at in sorted(self.entries.items()))}
        if self.markers_until:
            found[MARKERS_UNTIL] = {"N": str(self.markers_until)}
        return found


def marker_item(event_id: str, now: datetime) -> dict[str, Any]:
    """An event applied while its profile is in marker mode (``EventMemory``), kept ``EVENT_MEMORY``."""
    return {
        "pk": {"S": f"ev:{event_id}"},
        "sk": {"S": EVENT},
        "expires_at": {"N": str(int((now + EVENT_MEMORY).timestamp()))},
    }


def redirect_item(key: str, canonical: str) -> dict[str, Any]:
    """A redirect from an identifier to the profile it belongs to. Those of cookies and device tokens (identifiers
    that come and go with browsers and app installs) expire ``ANONYMOUS_RETENTION`` after they were linked: a
    cookie still in use then is linked again at its next sign-in, and what it did meanwhile joins the person with it
    (a merge). Customer ids, e-mail addresses and phone numbers stay linked until erasure: one each per contact
    detail a person gave the shop."""
    item = {"pk": {"S": key}, "sk": {"S": PROFILE}, "canonical": {"S": canonical}}
    if key.startswith(EPHEMERAL):
        item["expires_at"] = {"N": str(int((clock.now() + ANONYMOUS_RETENTION).timestamp()))}
    return item


EPHEMERAL = ("a:", "t:")
"""Identifier kinds whose redirects expire: cookies and device tokens."""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
