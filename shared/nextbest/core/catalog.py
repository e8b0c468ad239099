"""The shop's catalog: products as the shop sends them (``product.updated`` events, or a file imported with
``nextbest catalog import``), and what a message may show of them.

The catalog is data the shop owns, not something nextbest infers from behaviour: a product's name, page, image,
price and availability come from the shop, so a message never shows a name a cart event once carried for a product
since renamed, and never recommends a product the shop no longer sells (:func:`recommendable`). Each product is a
snapshot whose newest ``updated_at`` wins (:func:`newer`), so events arriving late, twice or in any order leave the
same catalog, as profiles do.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from hashlib import blake2b
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from nextbest.core.events import Availability, ProductUpdated

REMOVED_RETENTION = timedelta(days=30)
"""How long a removed product is kept before it expires: long enough that an older ``product.updated`` arriving late
(EventBridge retries for 24 hours, SQS keeps a message 4 days, a dead-letter queue 14 before a replay) finds the
removal and cannot bring the product back; after it the item is deleted, so removed products do not pile up."""
FIELDS = ("product_id", "name", "url", "image_url", "price", "currency", "category", "category_url", "availability")
"""The columns of an import file (``product_id`` and, unless the row is a removal, ``name``, ``url``, ``price``)."""


class Product(ProductUpdated):
    """A product as stored: its newest ``product.updated`` (``updated_at`` is that event's ``occurred_at``; an
    imported row's event id is ``import-<row>``)."""

    @property
    def updated_at(self) -> datetime:
        return self.occurred_at

    @classmethod
    def of(cls, event: ProductUpdated) -> Product:
        return cls.model_validate(event.model_dump())

    def digest(self) -> str:
        """A stable digest of the product's content: what breaks a tie between two states of the same instant."""
        body = self.model_dump_json(exclude={"event_id"})
        return blake2b(body.encode(), digest_size=8).hexdigest()

    @property
    def state(self) -> State:
        return State(availability=self.availability, price=self.price, currency=self.currency)

    @property
    def version(self) -> str:
        """Names this state of the product (its time and digest): what a change it made is known by."""
        return f"{self.updated_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}|{self.digest()}"


class State(BaseModel):
    """What a catalog change is read from: a product's availability and price (``nextbest.core.interest``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    availability: Availability
    price: Decimal | None = None
    currency: str = "USD"


@dataclass(frozen=True)
class Stored:
    """What storing a product's state did: ``written`` by this call; ``repeated``, the catalog held this very state
    already (a redelivery, or the same state sent twice); ``outdated``, it holds a newer one. ``previous``: the state
    the stored one replaced (None for a product's first state, and when outdated), recorded with it, so a repeat
    finds the same change as the write did."""

    outcome: Literal["written", "repeated", "outdated"]
    previous: State | None = None


def newer(candidate: Product, stored: Product | None) -> bool:
    """Whether ``candidate`` replaces ``stored``: the newest state wins, and at the same instant the greater digest
    (so two producers' conflicting states end the same whatever order they arrive in). A repeat does not."""
    if stored is None:
        return True
    return (candidate.updated_at, candidate.digest()) > (stored.updated_at, stored.digest())


def recommendable(product: Product | None) -> bool:
    """A product a message may recommend: one the catalog lists as in stock. An unknown product is not, since
    a message could show neither its name nor its page."""
    return product is not None and product.availability == "in_stock"


@dataclass(frozen=True)
class Shown:
    """A product as a template sees it (``name``, ``url``, ``image_url``, ``price``, ``currency``, ``product_id``,
    ``category``, ``category_url``). It prints as its name, so a template written when recommendations were ids
    (``recommendations|join(', ')``) shows names instead of breaking."""

    product_id: str
    name: str
    url: str
    image_url: str | None
    price: Decimal | None
    currency: str
    category: str | None = None
    category_url: str | None = None
    """The category's page, when the catalog gives one: no page is made up from the category's name."""

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Category:
    """A category as a template sees it (``name``, ``url``: its page in the shop, from the catalog's
    ``category_url``). It prints as its name."""

    name: str
    url: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Rejected:
    """A row an import refused: where it is and why."""

    file: str
    row: int
    """The line of a JSONL file, or the row of a CSV file counting its header as row 1 (as a spreadsheet does)."""
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.reason}"


def read_import(text: str, file: str, at: datetime) -> tuple[list[Product], list[Rejected]]:
    """The products of an import file (CSV with a header row of :data:`FIELDS`, or JSON Lines when the file name ends
    in ``.jsonl``/``.ndjson``), each as of ``at``, and the rows refused with their reason. A product listed twice
    keeps its last row."""
    products: dict[str, Product] = {}
    rejected: list[Rejected] = []
    for row, fields in _rows(text, file):
        if isinstance(fields, str):
            rejected.append(Rejected(file, row, fields))
            continue
        try:
            event = ProductUpdated.model_validate(
                {k: v for k, v in fields.items() if v not in ("", None)}
                | {"event_id": f"import-{row}", "occurred_at": at}
            )
        except ValidationError as error:
            rejected.append(Rejected(file, row, _reason(error)))
            continue
        products[event.product_id] = Product.of(event)
    return list(products.values()), rejected


def _rows(text: str, file: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, the row's fields or why it cannot be read)."""
    if file.lower().endswith((".jsonl", ".ndjson")):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"not JSON ({error.msg})"
                continue
            yield number, value if isinstance(value, dict) else "not a JSON object"
        return
    reader = csv.DictReader(io.StringIO(text))
    unknown = sorted(set(reader.fieldnames or ()) - set(FIELDS))
    if unknown or "product_id" not in (reader.fieldnames or ()):
        header = f"unknown columns {', '.join(unknown)}" if unknown else "no product_id column"
        raise ValueError(f"{file}: row 1: {header} (the header names the columns: {', '.join(FIELDS)})")
    for number, fields in enumerate(reader, start=2):
        if None in fields:
            yield number, "more cells than the header has columns"
            continue
        yield number, fields


def _reason(error: ValidationError) -> str:
    """The first problems, by field, without the values."""
    parts = []
    for e in error.errors(include_input=False)[:3]:
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
