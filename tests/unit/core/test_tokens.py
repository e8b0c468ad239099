"""Unsubscribe links name no person, say when they were signed, and cannot be forged."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from nextbest.core.tokens import LIFETIME, SignedLink, sign, verify

AT = datetime(2026, 11, 2, 10, 1, tzinfo=UTC)


def old_format(key: bytes, decision_id: str) -> str:
    """As tokens were signed before they carried their issue time."""
    mac = hmac.new(key, decision_id.encode(), hashlib.sha256).digest()[:18]
    return f"{decision_id}.{base64.urlsafe_b64encode(mac).decode()}"


def test_a_signed_token_verifies_to_its_decision_and_issue_time():
    token = sign(b"k", "6f1c63a0-2f7e-4d8e-9a57-0d8c1f6b4e21", AT)
    assert verify(b"k", token) == SignedLink("6f1c63a0-2f7e-4d8e-9a57-0d8c1f6b4e21", AT)


def test_a_token_for_another_decision_or_key_or_issue_time_is_refused():
    token = sign(b"k", "decision-a", AT)
    assert verify(b"other", token) is None
    assert verify(b"k", token.replace("decision-a", "decision-b")) is None
    issued = str(int(AT.timestamp()))
    assert verify(b"k", token.replace(issued, str(int(AT.timestamp()) + 86_400 * 365))) is None  # made younger
    assert verify(b"k", "") is None and verify(b"k", "decision-a") is None
    assert verify(b"k", f"decision-a.{issued}.x.y") is None


def test_a_token_with_non_ascii_characters_is_refused_not_an_error():
    token = sign(b"k", "decision-a", AT)
    assert verify(b"k", token[:-1] + "é") is None
    assert verify(b"k", "décision.abc") is None
    assert verify(b"k", "decision-a.١٢٣.abc") is None  # digits, but not ASCII ones


def test_an_old_format_token_still_verifies_with_no_issue_time_and_cannot_be_turned_into_a_new_one():
    token = old_format(b"k", "decision-a")
    assert verify(b"k", token) == SignedLink("decision-a", None)
    decision_id, _, mac = token.partition(".")
    assert verify(b"k", f"{decision_id}.{int(AT.timestamp())}.{mac}") is None


def test_after_a_rotation_a_link_signed_with_the_previous_key_still_verifies_and_an_older_one_does_not():
    for token in (sign(b"old", "decision-a", AT), old_format(b"old", "decision-a")):
        assert verify([b"new", b"old"], token) is not None
        assert verify([b"new"], token) is None


def test_a_link_lives_at_least_the_30_days_can_spam_requires_after_the_send():
    assert timedelta(days=30) <= LIFETIME
