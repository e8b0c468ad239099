"""One-click unsubscribe (RFC 8058), as large mailbox providers require of bulk senders.

Every e-mail carries ``List-Unsubscribe: <https://…/?t=TOKEN>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``. The token is the decision id, when it was signed and an HMAC of both, so a link
names no person and cannot be forged; the endpoint turns a valid POST into an e-mail opt-out for the person the
decision was for. A GET only shows a confirmation button: link scanners fetch links, and must not unsubscribe
anyone.

A link works for :data:`~nextbest.core.tokens.LIFETIME` after its e-mail was sent, and never against a newer
choice: a customer who withdrew consent after the e-mail and then gave it again keeps it, whatever the old link
says (a grant merely repeated, with no opt-out since the e-mail, is no new choice: the link still works). A link
signed before tokens carried their issue time takes its decision's time instead (the e-mail went out minutes
later, days at worst: the delivery queue keeps a request 4 days), so it too works the 30 days the law asks after
the send, and stops at last.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from nextbest.core.ports import Store
from nextbest.core.profiles import Consent, Profile, offer_consent
from nextbest.core.tokens import SignedLink, expired

Outcome = Literal["unsubscribed", "resubscribed", "expired", "unknown"]


def unsubscribe(store: Store, link: SignedLink, at: datetime) -> Outcome:
    if link.issued_at is not None and expired(link.issued_at, at):
        return "expired"  # before reading anything
    record = store.decision(link.decision_id)
    if record is None:
        return "unknown"
    issued = link.issued_at or record.decision.decided_at
    if expired(issued, at):
        return "expired"
    optout = Consent(granted=False, at=at, source="list_unsubscribe")

    def withdraw(p: Profile) -> Profile:
        return p if resubscribed(p, issued) else offer_consent(p, "email", optout)

    changed = store.change(record.decision.profile_key, withdraw)
    if changed is None:
        return "unknown"
    return "resubscribed" if resubscribed(changed, issued) else "unsubscribed"


def resubscribed(p: Profile, since: datetime) -> bool:
    """Whether the customer withdrew e-mail consent after ``since`` and has given it again: a newer choice than
    any link issued at ``since``."""
    consent = p.consent.get("email")
    return bool(consent and consent.granted and consent.withdrawn_at and consent.withdrawn_at > since)
