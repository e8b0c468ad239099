"""Signed unsubscribe tokens: the link in every e-mail names its decision and when it was sent, and only we can
make one.

A token is ``<decision id>.<issued at, Unix seconds>.<MAC>``, the MAC the first 18 bytes of an HMAC-SHA256 of
``<decision id>.<issued at>``, base64url. Tokens signed before they carried their issue time,
``<decision id>.<MAC of the decision id>``, are still in customers' inboxes: they verify, with no issue time.
The two sign different messages (a decision id holds no dot), so neither can be made from the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

LIFETIME = timedelta(days=90)
"""How long after its e-mail was sent a link still unsubscribes.

CAN-SPAM requires an opt-out to keep working for at least 30 days after the message is sent; 90 days is three
times that, and longer than the longest cooldown between two messages of a campaign (win-back, 60 days), so the
newest e-mail a customer holds always has a working link. Past it, a forwarded or leaked link no longer
unsubscribes anyone."""


@dataclass(frozen=True)
class SignedLink:
    """What a verified token says."""

    decision_id: str
    issued_at: datetime | None
    """When deliver signed it (as it sent the e-mail); None for a token signed before tokens carried it."""


def sign(key: bytes, decision_id: str, issued_at: datetime) -> str:
    issued = str(int(issued_at.timestamp()))
    return f"{decision_id}.{issued}.{_mac(key, f'{decision_id}.{issued}')}"


def verify(keys: bytes | Sequence[bytes], token: str) -> SignedLink | None:
    """What a token signed with any of ``keys`` (the current and the previous key after a rotation) says, or
    None if it was not signed by us."""
    if not token.isascii():  # ours are ASCII; compare_digest refuses other str (TypeError)
        return None
    parts = token.split(".")
    if len(parts) == 3 and parts[1].isdigit() and len(parts[1]) <= 12:
        decision_id, issued, mac = parts
        signed, issued_at = f"{decision_id}.{issued}", datetime.fromtimestamp(int(issued), UTC)
    elif len(parts) == 2:  # signed before tokens carried their issue time
        decision_id, mac = parts
        signed, issued_at = decision_id, None
    else:
        return None
    candidates = [keys] if isinstance(keys, bytes) else keys
    if not decision_id or not any(hmac.compare_digest(_mac(key, signed), mac) for key in candidates):
        return None
    return SignedLink(decision_id, issued_at)


def expired(issued_at: datetime, now: datetime) -> bool:
    return now - issued_at > LIFETIME


def _mac(key: bytes, message: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()[:18]).decode()
