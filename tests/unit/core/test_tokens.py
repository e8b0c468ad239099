"""Unsubscribe links name no person and cannot be forged."""

from nextbest.core.tokens import sign, verify


def test_a_signed_token_verifies_to_its_decision():
    token = sign(b"k", "6f1c63a0-2f7e-4d8e-9a57-0d8c1f6b4e21")
    assert verify(b"k", token) == "6f1c63a0-2f7e-4d8e-9a57-0d8c1f6b4e21"


def test_a_token_for_another_decision_or_key_is_refused():
    token = sign(b"k", "decision-a")
    assert verify(b"other", token) is None
    assert verify(b"k", token.replace("decision-a", "decision-b")) is None
    assert verify(b"k", "") is None and verify(b"k", "decision-a") is None


def test_a_token_with_non_ascii_characters_is_refused_not_an_error():
    token = sign(b"k", "decision-a")
    assert verify(b"k", token[:-1] + "é") is None
    assert verify(b"k", "décision.abc") is None


def test_after_a_rotation_a_link_signed_with_the_previous_key_still_verifies_and_an_older_one_does_not():
    token = sign(b"old", "decision-a")
    assert verify([b"new", b"old"], token) == "decision-a"
    assert verify([b"new"], token) is None
