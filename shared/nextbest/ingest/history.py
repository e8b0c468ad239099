"""A shop's existing customers, consents and orders, loaded in bulk (``nextbest import``) by the rules of ingest.

Rows become the same events the bus carries (``customer.identified``, ``consent.updated``, ``order.placed``),
validated by the same models, and go through :func:`nextbest.ingest.service.ingest_batch`: identity resolution and
merges, consent (the newest statement wins, an opt-out wins ties), orders counted once by their id, and each
event's id remembered on its profile. Event ids are derived from the rows (an order's from its id), so an import
run twice, or resumed after a crash, changes nothing the first run did.

Two differences from live events, both because the history is old:

* it arms no trigger that is already due (``nextbest.core.profiles.settle``): a cart abandoned last month, a
  purchase anniversary gone by, is history, not a reason to write today; the weekly lapse check of an imported
  buyer is spread over the week after the import, so a million imported buyers are not all scored in one minute;
* a customer's rows are applied in two writes, not one per row: their ``customer.identified`` first (it creates
  or finds the profile and links their identifiers), then everything else in one write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from nextbest.core.events import ConsentUpdated, CustomerIdentified, EventDetail, OrderPlaced
from nextbest.core.ports import Store
from nextbest.core.profiles import TriggerDelays, identity_keys
from nextbest.ingest.service import Ingested, ingest_batch

KINDS = ("customers", "consents", "orders")
DATE_COLUMN = "date."
"""A customers column ``date.<name>`` (``date.birthday``) is the customer's date of that name: ``dates`` on
``customer.identified``, what date triggers fire on."""
TRUE, FALSE = {"true", "yes", "y", "1", "granted"}, {"false", "no", "n", "0", "withdrawn", "revoked"}


@dataclass(frozen=True)
class Rejected:
    """A row that cannot be imported, and why (file, 1-based row number, reason), for the rejected-rows report."""

    file: str
    row: int
    reason: str


@dataclass
class History:
    """Every importable event, grouped by the customer it is about, and the rows refused."""

    events: dict[str, list[tuple[str, EventDetail]]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, kind: str, event: EventDetail) -> None:
        self.events.setdefault(identity_keys(event.identifiers())[0], []).append((kind, event))

    def customers(self) -> list[str]:
        """Customers in a fixed order, so that chunks (and a resumed import's skipped chunks) are the same each run."""
        return sorted(self.events)


Rows = Iterable[tuple[int, Mapping[str, Any]]]
"""(line number in the file, row) pairs."""


def read(kind: str, name: str, rows: Rows, now: datetime, history: History) -> None:
    """Turn the rows of one file (``kind``: customers, consents or orders) into events, refusing the invalid ones.

    Orders may come one row per line item (rows with the same ``order_id`` are one order) or with an ``items``
    list (JSON lines)."""
    if kind == "orders":
        _orders(name, rows, now, history)
        return
    for number, row in rows:
        if "__error__" in row:
            history.rejected.append(Rejected(name, number, row["__error__"]))
            continue
        try:
            event = _customer(row, now) if kind == "customers" else _consent(row, now)
        except (ValidationError, ValueError, KeyError) as error:
            history.rejected.append(Rejected(name, number, _reason(error)))
            continue
        history.add("customer.identified" if kind == "customers" else "consent.updated", event)


def load(
    store: Store, chunk: list[list[tuple[str, EventDetail]]], now: datetime, delays: TriggerDelays
) -> list[Ingested | Exception]:
    """Import the events of a chunk of customers: their ``customer.identified`` events in one batch, then the
    rest in another (one write per customer: each group leads to one existing profile by then)."""
    first_kind = "customer.identified"
    first = [e for events in chunk for e in events if e[0] == first_kind]
    rest = [e for events in chunk for e in sorted(events, key=lambda e: e[1].occurred_at) if e[0] != first_kind]
    results: list[Ingested | Exception] = []
    for batch in (first, rest):
        if batch:
            store.forget()
            store.prefetch_identities({k for _, event in batch for k in identity_keys(event.identifiers())})
            results += ingest_batch(store, batch, delays, history_at=now)
    return results


def chunks(history: History, size: int) -> Iterator[list[list[tuple[str, EventDetail]]]]:
    customers = history.customers()
    for start in range(0, len(customers), size):
        yield [history.events[c] for c in customers[start : start + size]]


# --- rows to events --------------------------------------------------------------------------------------------


def _event_id(prefix: str, row: Mapping[str, Any]) -> str:
    digest = hashlib.blake2b(json.dumps(row, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()
    return f"import-{prefix}-{digest}"


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row without its empty cells (a CSV has every column on every row)."""
    return {k.strip(): v.strip() if isinstance(v, str) else v for k, v in row.items() if k and v not in (None, "")}


def _customer(row: Mapping[str, Any], now: datetime) -> CustomerIdentified:
    cells = _present(row)
    fields = {k: cells[k] for k in ("customer_id", "email", "phone", "first_name", "time_zone") if k in cells}
    if "customer_id" not in fields:
        raise ValueError("customer_id is required")
    dates = {k.removeprefix(DATE_COLUMN): v for k, v in cells.items() if k.startswith(DATE_COLUMN)}
    at = cells.get("signed_up_at") or cells.get("occurred_at") or now.isoformat()
    return CustomerIdentified.model_validate(
        {"event_id": _event_id("c", cells), "occurred_at": at, **fields, **({"dates": dates} if dates else {})}
    )


def _consent(row: Mapping[str, Any], now: datetime) -> ConsentUpdated:
    cells = _present(row)
    granted = str(cells.get("granted", "")).lower()
    if granted not in TRUE | FALSE:
        raise ValueError(f"granted must be true or false, not {cells.get('granted')!r}")
    if "customer_id" not in cells and "email" not in cells and "phone" not in cells:
        raise ValueError("customer_id, email or phone is required")
    if "at" not in cells and "occurred_at" not in cells:
        raise ValueError("at (when the consent was given or withdrawn) is required")
    ids = {k: cells[k] for k in ("customer_id", "email", "phone") if k in cells}
    return ConsentUpdated.model_validate(
        {
            "event_id": _event_id("k", cells),
            "occurred_at": cells.get("at") or cells["occurred_at"],
            "channel": cells.get("channel"),
            "granted": granted in TRUE,
            "source": cells.get("source", "import"),
            **ids,
        }
    )


def _orders(name: str, rows: Rows, now: datetime, history: History) -> None:
    """Rows with the same ``order_id`` are one order's line items; an order with any bad row is refused whole."""
    orders: dict[str, tuple[int, dict[str, Any], list[dict[str, Any]]]] = {}
    bad: dict[str, Rejected] = {}
    for number, row in rows:
        if "__error__" in row:
            history.rejected.append(Rejected(name, number, row["__error__"]))
            continue
        cells = _present(row)
        order_id = str(cells.get("order_id", ""))
        if not order_id:
            history.rejected.append(Rejected(name, number, "order_id is required"))
            continue
        _, _, items = orders.setdefault(order_id, (number, cells, []))
        if isinstance(cells.get("items"), list):
            items.extend(cells["items"])
        elif "product_id" in cells:
            line = {k: cells[k] for k in ("product_id", "name", "quantity", "unit_price", "category") if k in cells}
            items.append({"name": line.get("product_id"), "quantity": 1} | line)
        elif order_id not in bad:
            bad[order_id] = Rejected(name, number, "an order needs its line items (product_id, …) or an items list")
    for order_id, (number, cells, items) in orders.items():
        if order_id in bad:
            history.rejected.append(bad[order_id])
            continue
        try:
            if "at" not in cells and "occurred_at" not in cells:
                raise ValueError("at (when the order was placed) is required")
            ids = {k: cells[k] for k in ("customer_id", "email", "phone") if k in cells}
            total = cells.get("total") or sum(Decimal(str(i["unit_price"])) * int(i["quantity"]) for i in items)
            event = OrderPlaced.model_validate(
                {
                    "event_id": f"import-o-{hashlib.blake2b(order_id.encode(), digest_size=12).hexdigest()}",
                    "occurred_at": cells.get("at") or cells["occurred_at"],
                    "order_id": order_id,
                    "items": items,
                    "total": total,
                    "currency": cells.get("currency", "USD"),
                    **ids,
                }
            )
        except (ValidationError, ValueError, KeyError, ArithmeticError) as error:
            history.rejected.append(Rejected(name, number, _reason(error)))
            continue
        history.add("order.placed", event)


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        return f"{where}: {first['msg']}"
    if isinstance(error, KeyError):
        return f"{error.args[0]} is required"
    return str(error)
