"""One-click unsubscribe (RFC 8058), as large mailbox providers require of bulk senders.

Every e-mail carries ``List-Unsubscribe: <https://…/?t=TOKEN>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``. The token is the decision id and an HMAC of it, so a link names no person and
cannot be forged; the endpoint turns a valid POST into an e-mail opt-out for the person the decision was
for. A GET only shows a confirmation button: link scanners fetch links, and must not unsubscribe anyone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from functools import cache
from typing import Literal

from nextbest import aws
from nextbest.decisioning import Decision
from nextbest.profiles import Consent, offer_consent
from nextbest.store import Store


def sign(key: bytes, decision_id: str) -> str:
    mac = hmac.new(key, decision_id.encode(), hashlib.sha256).digest()[:18]
    return f"{decision_id}.{base64.urlsafe_b64encode(mac).decode()}"


def verify(key: bytes, token: str) -> str | None:
    """The decision id a token was signed for, or None if it was not signed by us."""
    decision_id, _, _ = token.partition(".")
    return decision_id if decision_id and hmac.compare_digest(sign(key, decision_id), token) else None


def unsubscribe(store: Store, decision_id: str, at: datetime) -> Literal["unsubscribed", "unknown"]:
    record = store.decision(decision_id)
    if record is None:
        return "unknown"
    decision = Decision.model_validate_json(record[1])
    optout = Consent(granted=False, at=at, source="list_unsubscribe")
    changed = store.change(decision.profile_key, lambda p: offer_consent(p, "email", optout))
    return "unknown" if changed is None else "unsubscribed"


@cache
def signing_key(secret_arn: str) -> bytes:
    """The HMAC key, read once per container from Secrets Manager."""
    return str(aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]).encode()
