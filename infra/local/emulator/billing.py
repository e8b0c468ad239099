"""DynamoDB's billing rules, as pure functions of item sizes: what one request costs in capacity units.

The rules are AWS's own, from the DynamoDB Developer Guide:

* item size: "DynamoDB item sizes and formats",
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html — the sum of
  attribute names and values (UTF-8 bytes; numbers 1 byte per two significant digits + 1; booleans and nulls 1;
  a list or map 3 bytes + its elements, 1 byte more per element);
* units: "DynamoDB read and write operations",
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html — a write is 1 unit
  per KB (rounded up) of the larger of the item before and after it (a failed conditional write too), a strongly
  consistent read 1 unit per 4 KB, an eventually consistent one half, a transactional one 2; BatchGetItem rounds
  each item, Query the sum of the items it read; a read of an item that does not exist still costs;
* transactions: "Amazon DynamoDB Transactions: How it works",
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html — two underlying writes
  (prepare, commit) of every item, so 2 units per KB;
* indexes: "Using Global Secondary Indexes", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html
  (its write-capacity section, ``#GSI.Writes``) — a table write that puts an item into an index, or takes it out,
  is 1 index write of the projected entry; one that changes the item's index key is 2 (delete, put); one that
  changes a projected attribute is 1; anything else 0.

Two choices the pages leave open, taken here: a cancelled transaction is billed its prepare phase only (1 unit per
KB of each item, like a failed conditional write); index writes are not doubled inside a transaction (they are
propagated after the commit).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

KB = 1024
WRITE_UNIT_BYTES = KB
READ_UNIT_BYTES = 4 * KB

AttributeValue = Mapping[str, Any]
"""One value in DynamoDB's wire format, e.g. ``{"S": "text"}``, ``{"N": "12"}``, ``{"M": {...}}``."""
Item = Mapping[str, AttributeValue]


def item_size(item: Item | None) -> int:
    """Bytes of an item by DynamoDB's rules: each attribute's name plus its value; 0 for no item."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def value_size(value: AttributeValue) -> int:
    """Bytes of one value (without its attribute name)."""
    [(kind, content)] = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return number_size(content)
    if kind == "B":
        return len(_raw(content))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in content)
    if kind == "NS":
        return sum(number_size(n) for n in content)
    if kind == "BS":
        return sum(len(_raw(b)) for b in content)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in content)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in content.items())
    raise ValueError(f"not a DynamoDB attribute value: {kind}")


def number_size(text: str) -> int:
    """1 byte per two significant digits (leading and trailing zeros trimmed), plus 1."""
    try:
        digits = "".join(str(d) for d in Decimal(text).as_tuple().digits).strip("0")
    except InvalidOperation:
        raise ValueError(f"not a DynamoDB number: {text!r}") from None
    return math.ceil(len(digits) / 2) + 1


def _raw(content: bytes | str) -> bytes:
    """A binary value's raw bytes (botocore takes bytes; the wire and moto carry base64 text)."""
    return content if isinstance(content, bytes) else base64.b64decode(content)


def write_units(size: int) -> int:
    """Write units of one write of an item of ``size`` bytes: 1 per KB, rounded up, at least 1."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """Read units of reading ``size`` bytes at once (an item, or the items one Query read): 1 per 4 KB, rounded
    up, at least 1 (a missing item or an empty page costs too); eventually consistent, half."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units if consistent else units / 2


@dataclass(frozen=True)
class Index:
    """A global secondary index: its key attributes and what it projects (``None``: every attribute)."""

    name: str
    keys: tuple[str, ...]
    projected: tuple[str, ...] | None = ()

    def entry(self, item: Item | None, table_keys: tuple[str, ...]) -> dict[str, AttributeValue] | None:
        """The item's entry in the index, or None if the item is not in it (the index is sparse)."""
        if item is None or not all(k in item for k in self.keys):
            return None
        if self.projected is None:
            return dict(item)
        kept = {*table_keys, *self.keys, *self.projected}
        return {name: value for name, value in item.items() if name in kept}


def index_write_units(
    before: Item | None, after: Item | None, indexes: tuple[Index, ...], table_keys: tuple[str, ...]
) -> int:
    """Write units one applied table write costs in its indexes."""
    units = 0
    for index in indexes:
        old, new = index.entry(before, table_keys), index.entry(after, table_keys)
        if old == new:  # not in it before or after, or nothing it holds changed
            continue
        if old is None or new is None:
            units += write_units(item_size(new if old is None else old))
        elif any(old[k] != new[k] for k in index.keys):
            units += write_units(item_size(old)) + write_units(item_size(new))
        else:
            units += write_units(item_size(new))
    return units


@dataclass(frozen=True)
class ItemWrite:
    """What one item of a write request cost."""

    units: int
    """Table write units (doubled inside a transaction that committed)."""
    index_units: int
    applied: bool
    transactional: bool


def item_write(
    before: Item | None,
    after: Item | None,
    *,
    applied: bool,
    transactional: bool = False,
    indexes: tuple[Index, ...] = (),
    table_keys: tuple[str, ...] = (),
) -> ItemWrite:
    """The cost of writing one item from ``before`` to ``after`` (None: absent).

    Not ``applied`` (its condition failed, or its transaction was cancelled), ``after`` is what the request asked
    for: it is billed once at the larger size, and nothing reaches the indexes.
    """
    units = write_units(max(item_size(before), item_size(after)))
    if not applied:
        return ItemWrite(units, 0, applied=False, transactional=transactional)
    index_units = index_write_units(before, after, indexes, table_keys)
    return ItemWrite(units * (2 if transactional else 1), index_units, applied=True, transactional=transactional)
