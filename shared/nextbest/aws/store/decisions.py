"""Decision records: created once, committed with the profile, moved from status to status by
compare-and-set, annotated once per fact (the table's stream carries each
change to the tally, which counts it); and the provider message ids that lead back to them.

A decision is two items under one partition key: the record (``DECISION``: status, claim, facts, and the decision
without its rendered messages, its JSON zlib-compressed: under 1 KB) and the body (``BODY``: the rendered messages,
zlib-compressed, written once with the record and never updated). Every status change and fact rewrites only the
record, so it is billed 1 write unit whatever the e-mail's size (DynamoDB bills a write by the larger of the item's
sizes before and after it; 2 inside a transaction); deliver reads both with one Query.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.aws.store.table import (
    BODY,
    BY_CUSTOMER,
    CONDITION_FAILED,
    DECISION,
    DECISION_RETENTION,
    EVENT_MEMORY,
    MESSAGE,
    Table,
    compress,
    document,
    failed_write,
)
from nextbest.core import clock
from nextbest.core.clock import iso
from nextbest.core.decision import Decision, Message
from nextbest.core.ports import Conflict, DecisionExists, SentMessage, StoredDecision
from nextbest.core.profiles import Profile


class DecisionItems(Table):
    def put_decision(self, decision: Decision, status: str) -> bool:
        """Record a decision once; False if a decision with this id already exists.

        Its customer and time put it in the ``by_customer`` index: explanation and erasure find a customer's
        decisions there.
        """
        try:
            self.commit_decision(decision, status, profile=None)
            return True
        except DecisionExists:
            return False

    def commit_decision(self, decision: Decision, status: str, profile: Profile | None) -> None:
        """Record a decision and the profile it was checked against, both or neither.

        Raises DecisionExists if the decision was made before, Conflict if the profile changed since it was
        read (decide again).
        """
        decision_id, customer = decision.decision_id, decision.profile_key
        expires_at = {"N": str(int((decision.decided_at + DECISION_RETENTION).timestamp()))}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": {"S": f"d:{decision_id}"},
                        "sk": {"S": DECISION},
                        "status": {"S": status},
                        "doc": {"B": compress(decision.model_dump_json(exclude={"messages"}).encode())},
                        "customer": {"S": customer},
                        "decided_at": {"S": iso(decision.decided_at)},
                        "expires_at": expires_at,
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if decision.messages:  # unconditional: written only when the record is, in the same transaction
            body = {"pk": {"S": f"d:{decision_id}"}, "sk": {"S": BODY}, "expires_at": expires_at}
            items.append({"Put": {"TableName": self.table, "Item": body | {"messages": {"B": pack(decision)}}}})
        if profile is not None:
            items.append(self._next_version(profile))
        try:
            self._write(items)
        except Conflict as conflict:
            if conflict.failed == 0:
                raise DecisionExists(decision_id) from conflict
            self.forget([customer])
            raise
        if profile is not None:
            self.forget([profile.key])

    def decision(self, decision_id: str) -> StoredDecision | None:
        """A decision (record and body, one strongly consistent Query) and its status."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"d:{decision_id}"}},
            ConsistentRead=True,
        )
        items = {item["sk"]["S"]: item for item in response.get("Items", [])}
        item = items.get(DECISION)
        if item is None:
            return None
        claimed_at, claim = (item.get(name, {}).get("S") for name in ("claimed_at", "claim"))
        return StoredDecision(item["status"]["S"], decision_of(item, items.get(BODY)), claimed_at, claim)

    def move_decision(
        self,
        decision_id: str,
        from_status: str | tuple[str, ...],
        to_status: str,
        profile: Profile | None = None,
        **fields: str,
    ) -> bool:
        """Compare-and-set a decision's status (the claim that makes delivery happen at most once), saving
        ``profile`` with it if given (conditional on its version: Conflict if it changed since it was read)."""
        allowed = (from_status,) if isinstance(from_status, str) else from_status
        return self._update_decision(decision_id, allowed, {"status": to_status, **fields}, profile=profile)

    def claim(self, decision_id: str, token: str) -> bool:
        """Move a decision from ``queued`` to ``sending`` under ``token`` (unique to the caller): True if the
        caller now holds it. A claim whose write took effect but whose answer was lost (a timeout) is retried by
        botocore and fails its condition: the token on the item tells that it is the caller's own."""
        if self.move_decision(decision_id, "queued", "sending", claim=token, claimed_at=iso(clock.now())):
            return True
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"d:{decision_id}"}, "sk": {"S": DECISION}},
            ConsistentRead=True,
            ProjectionExpression="#s, #c",
            ExpressionAttributeNames={"#s": "status", "#c": "claim"},
        ).get("Item", {})
        return item.get("status", {}).get("S") == "sending" and item.get("claim", {}).get("S") == token

    def annotate_decision(self, decision_id: str, **fields: str) -> bool:
        """Record facts about a decision (opened_at, clicked_at…) without touching its status, the first
        time only: False if the first field is already set. So a fact is counted once (by the tally, from the
        change) however often its notification arrives."""
        first = next(iter(fields))
        return self._update_decision(decision_id, None, fields, unless=first)

    def _update_decision(
        self,
        decision_id: str,
        allowed: tuple[str, ...] | None,
        fields: dict[str, str],
        unless: str | None = None,
        profile: Profile | None = None,
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
        items: list[dict[str, Any]] = [{"Update": update}]
        if profile is not None:
            items.append(self._next_version(profile))
        try:
            if len(items) > 1:
                self._transact(items)
            else:
                self._retried(lambda: self.client.update_item(**update))
        except ClientError as error:
            failed = failed_write(error) if aws.error_code(error) in CONDITION_FAILED else None
            if failed == 0:
                return False
            if failed == 1 and profile is not None:
                self.forget([profile.key])
                raise Conflict(profile.key, failed) from None
            raise
        if profile is not None:
            self.forget([profile.key])
        return True

    def decisions_of(self, key: str) -> list[str]:
        """Ids of every decision made for this identity key."""
        return [pk[2:] for pk in self._query(BY_CUSTOMER, "customer", key)]

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

    def message(self, message_id: str) -> SentMessage | None:
        """The decision (and hashed address) of a message remembered by :meth:`remember_message`."""
        item = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": f"m:{message_id}"}, "sk": {"S": MESSAGE}}, ConsistentRead=True
        ).get("Item")
        return SentMessage(item["decision"]["S"], item["address"]["S"]) if item else None


def pack(decision: Decision) -> bytes:
    """The rendered messages of a decision as stored in its body item: JSON, zlib-compressed (HTML shrinks
    about fivefold)."""
    messages = {channel: message.model_dump(mode="json") for channel, message in decision.messages.items()}
    return zlib.compress(json.dumps(messages, separators=(",", ":")).encode(), 6)


def decision_of(record: dict[str, Any], body: dict[str, Any] | None) -> Decision:
    """A decision from its record item and its body item (None when it has no messages)."""
    decision = Decision.model_validate(document(record))
    if body is None:
        return decision
    messages = json.loads(zlib.decompress(body["messages"]["B"]))
    return decision.model_copy(update={"messages": {c: Message.model_validate(m) for c, m in messages.items()}})
