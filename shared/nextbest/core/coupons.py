"""Coupon codes behind a campaign's offer: what the shop's checkout can redeem, and what brings an order back to the
message that gave it.

A campaign's ``[offer] coupon`` is ``"none"`` (the default), ``"signed"`` or ``"pool"``:

* **signed**: decide derives the code from a stack secret (``CouponKey``, like the unsubscribe links' key), so
  there is nothing to store and nothing to run out of, and the checkout verifies a code with a few lines and the
  secret (README, *Coupons*). A code reads ``PREFIX-PPPPPPEEETTTTTTT``: the campaign's prefix, 6 characters of
  payload (an HMAC of campaign id and decision id: unguessable, different for every message), 3 of expiry (days
  since :data:`EPOCH`) and 7 of tag (35 bits of HMAC-SHA256 over the code's first part). Crockford base32: no
  I, L, O or U, and a reader's ``O``/``I``/``L`` are read as ``0``/``1``/``1``. 16 characters are what fits on a
  till's screen and in an SMS; 35 bits of tag make a forged code one guess in 34 billion, which a checkout
  that rate-limits coupon attempts never lets anyone make. No key id in the code: the checkout tries the current
  key, then the previous one (a rotation keeps codes already sent valid, like the unsubscribe links).
* **pool**: the shop uploads codes its own system issued (``nextbest coupons upload``), and each is given to
  exactly one message (``nextbest.aws.store.coupons``). An empty pool takes the campaign out of the running with
  the reason :data:`POOL_EMPTY`, which ``nextbest explain`` shows.

Redemption: ``order.placed`` may carry the ``coupon`` the customer typed. The code is looked for in the message
log of the customer's own profile (every message logs the code it carried), and the order is credited to that
message as if the customer had come through its link (``nb``; ``nextbest.core.attribution``). Matching on the
profile rather than decoding the code or reading the pool's claim needs no secret and no read in ingest, and
credits only what attribution can credit anyway: a message of this customer, within the window.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from nextbest.core.campaigns import Campaign

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: digits and letters a checkout's customers cannot confuse."""
EPOCH = date(2025, 1, 1)
"""Expiry is counted in days from here: 3 characters (15 bits) reach the year 2114."""
PAYLOAD, EXPIRY, TAG = 6, 3, 7
BODY = PAYLOAD + EXPIRY + TAG
POOL_EMPTY = "coupon pool empty: upload codes (nextbest coupons upload)"
"""The candidate reason of a pool campaign whose pool has no code left."""
POOL_SHARDS = 16
"""A pool's codes are spread over this many partitions (by a hash of the code), and a decision claims from the one
its id hashes to, then the next ones: concurrent deciders rarely reach for the same code, and no single item is
written by every send (DynamoDB takes ~1,000 writes a second per partition)."""
CouponKind = Literal["none", "signed", "pool"]
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_CODE = re.compile(r"^[A-Z0-9]{1,8}$")


class CouponsGone(Exception):
    """The campaign's pool has no code left: decide excludes the campaign (with :data:`POOL_EMPTY`) and decides
    again, as it does when a budget counter refuses."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"{campaign_id}: {POOL_EMPTY}")
        self.campaign_id = campaign_id
        self.reason = POOL_EMPTY


def b32(number: int, length: int) -> str:
    """``number``'s lowest ``5 * length`` bits in ``length`` base32 characters, most significant first."""
    return "".join(ALPHABET[(number >> 5 * i) & 31] for i in reversed(range(length)))


def unb32(text: str) -> int:
    number = 0
    for character in text:
        number = number * 32 + ALPHABET.index(character)
    return number


def _bits(key: bytes, message: str, bits: int) -> int:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - bits)


def default_prefix(campaign_id: str) -> str:
    """A campaign's prefix unless ``[offer] coupon_prefix`` says: its id's first word, in capitals (``CART``)."""
    return re.sub(r"[^A-Z0-9]", "", campaign_id.split("-")[0].upper())[:8] or "NB"


def signed(key: bytes, prefix: str, campaign_id: str, decision_id: str, expires: date) -> str:
    """The signed code of one message: deterministic, so a retried decision renders the same code."""
    payload = b32(_bits(key, f"payload|{campaign_id}|{decision_id}", 5 * PAYLOAD), PAYLOAD)
    head = f"{prefix}-{payload}{b32((expires - EPOCH).days, EXPIRY)}"
    return head + b32(_bits(key, head, 5 * TAG), TAG)


def normal(code: str) -> str:
    """A code as the customer may have typed it (lower case, spaces, ``O`` for ``0``) in its canonical form. Only
    the body is re-read: the prefix may hold any letter."""
    prefix, dash, body = code.strip().upper().replace(" ", "").rpartition("-")
    return f"{prefix}{dash}{body.translate(_READ_AS)}"


def verify(code: str, keys: Sequence[bytes], today: date) -> date | None:
    """The code's expiry if one of ``keys`` (current first, then previous) signed it and it has not expired, else
    None. The reference implementation of README's snippets."""
    prefix, _, body = normal(code).rpartition("-")
    if not prefix or len(body) != BODY or any(c not in ALPHABET for c in body):
        return None
    head = f"{prefix}-{body[: PAYLOAD + EXPIRY]}"
    if not any(hmac.compare_digest(b32(_bits(key, head, 5 * TAG), TAG), body[-TAG:]) for key in keys):
        return None
    expires = EPOCH + timedelta(days=unb32(body[PAYLOAD : PAYLOAD + EXPIRY]))
    return expires if today <= expires else None


def expiry(decided_at: datetime, valid_days: int) -> date:
    return decided_at.date() + timedelta(days=valid_days)


def valid_pool_code(code: str) -> str | None:
    """Why a code the shop uploads cannot go in a pool, or None: up to 64 printable characters without spaces
    (what a checkout accepts and a message can show)."""
    if not code or len(code) > 64 or not code.isprintable() or any(c.isspace() for c in code):
        return "a code is 1 to 64 printable characters, no spaces"
    return None


def issued_by(messages: Iterable[_Logged], coupon: str | None) -> str | None:
    """The decision id of the message that carried ``coupon`` (compared in canonical form), or None."""
    if not coupon:
        return None
    wanted = normal(coupon)
    return next((m.decision_id for m in messages if m.coupon and normal(m.coupon) == wanted), None)


class _Logged(Protocol):
    """What :func:`issued_by` reads of a message log entry (``nextbest.core.profiles.MessageLog``)."""

    decision_id: str
    coupon: str | None


def prefix_error(prefix: str) -> str | None:
    return None if _CODE.match(prefix) else "a coupon prefix is 1 to 8 capital letters or digits"


def shard_of(code: str) -> int:
    """The pool partition an uploaded code goes to."""
    return int.from_bytes(hashlib.sha256(code.encode()).digest()[:4], "big") % POOL_SHARDS


def shards_for(decision_id: str) -> list[int]:
    """The pool partitions a decision claims from, in order: its own (by its id), then every other one, so an
    empty partition does not make the pool look empty while others still hold codes."""
    first = int.from_bytes(hashlib.sha256(decision_id.encode()).digest()[:4], "big") % POOL_SHARDS
    return [(first + i) % POOL_SHARDS for i in range(POOL_SHARDS)]


class Pool(Protocol):
    def claim_coupon(self, campaign_id: str, decision_id: str, at: datetime) -> str:
        """The code the decision holds, claiming one if it holds none; raises :class:`CouponsGone` if none is left."""
        ...


@dataclass
class Issuer:
    """What decide calls to put a code in a message (``nextbest.decide.engine.Coupons``): derived from the signing
    key (read when first needed, so a stack without coupon campaigns never reads the secret), or claimed from the
    campaign's pool."""

    pool: Pool
    key: Callable[[], bytes] | None = None

    def __call__(self, campaign: Campaign, decision_id: str, at: datetime) -> str:
        if campaign.offer.coupon == "pool":
            return self.pool.claim_coupon(campaign.id, decision_id, at)
        if self.key is None:
            raise RuntimeError(f"{campaign.id}: a signed coupon needs the coupon signing key (COUPON_SECRET_ARN)")
        expires = expiry(at, campaign.offer.coupon_valid_days)
        return signed(self.key(), campaign.coupon_prefix, campaign.id, decision_id, expires)
