"""One-click unsubscribe (RFC 8058), as large mailbox providers require of bulk senders.

Every e-mail carries ``List-Unsubscribe: <https://…/?t=TOKEN>`` and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``. The token is the decision id and an HMAC of it, so a link names no person and
cannot be forged; the endpoint turns a valid POST into an e-mail opt-out for the person the decision was
for. A GET only shows a confirmation button: link scanners fetch links, and must not unsubscribe anyone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from nextbest.core.ports import Store
from nextbest.core.profiles import Consent, offer_consent


def unsubscribe(store: Store, decision_id: str, at: datetime) -> Literal["unsubscribed", "unknown"]:
    record = store.decision(decision_id)
    if record is None:
        return "unknown"
    decision = record.decision
    optout = Consent(granted=False, at=at, source="list_unsubscribe")
    changed = store.change(decision.profile_key, lambda p: offer_consent(p, "email", optout))
    return "unknown" if changed is None else "unsubscribed"
