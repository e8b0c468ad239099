"""Signed unsubscribe tokens: the link in every e-mail names its decision, and only we can make one."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def sign(key: bytes, decision_id: str) -> str:
    mac = hmac.new(key, decision_id.encode(), hashlib.sha256).digest()[:18]
    return f"{decision_id}.{base64.urlsafe_b64encode(mac).decode()}"


def verify(keys: bytes | Sequence[bytes], token: str) -> str | None:
    """The decision id a token was signed for with any of ``keys`` (the current and the previous key after a
    rotation), or None if it was not signed by us."""
    decision_id, _, _ = token.partition(".")
    if not decision_id or not token.isascii():  # ours are ASCII; compare_digest refuses other str (TypeError)
        return None
    candidates = [keys] if isinstance(keys, bytes) else keys
    signed = any(hmac.compare_digest(sign(key, decision_id), token) for key in candidates)
    return decision_id if signed else None
