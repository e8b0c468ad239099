"""Issue 14: what would the cost per million events be without each guarantee or index that costs capacity?

Run from the repository root, e.g.::

    .venv/bin/python docs/experiments/cost_levers.py                      # as built
    .venv/bin/python docs/experiments/cost_levers.py txn_ingest           # one lever
    .venv/bin/python docs/experiments/cost_levers.py txn_ingest,txn_decide,eventual,canonical 300

It runs the demo's stream on the emulation, metered as ``make bench`` meters it (``nextbest_lab.capacity``), but
bills the requests as if a lever were pulled. Nothing the functions do changes: the figures are the most each
lever could save, not a design that pulls it. The levers:

* ``txn_ingest``: ingest's transactions (an identity merge or a new identifier's redirect, with the profile) billed
  as single writes, as if identities were linked without a transaction;
* ``txn_decide``: decide's transaction of a send (the profile, the decision and its body) billed as single writes;
* ``eventual``: every item read by ingest and decide (``GetItem``, ``BatchGetItem``) billed eventually consistent,
  half a unit, as if no read guarded a write;
* ``canonical``, ``due``, ``customer``: the ``by_canonical`` (erasure's redirects), ``by_due`` (the triggers) or
  ``by_customer`` (a customer's decisions) index free.

It prints the figures of ``make bench`` that the levers move, as one JSON line. docs/scale.md, *What is not solved
yet*, has the results. Not part of the package: it answers a design question, and patches the metering to do it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from nextbest_lab import capacity, demo
from nextbest_lab.cost import Prices

from infra.local import synthesize
from infra.local.emulator import metering

LEVERS = {"txn_ingest", "txn_decide", "eventual", "canonical", "due", "customer"}
INDEXES = {"canonical": "by_canonical", "due": "by_due", "customer": "by_customer"}


def pull(levers: set[str]) -> None:
    """Patch the metering so that it bills the requests as if ``levers`` were pulled."""
    unknown = levers - LEVERS
    if unknown:
        raise SystemExit(f"unknown levers {sorted(unknown)}; choose from {sorted(LEVERS)}")
    meter = metering.Metering
    bill_writes, read_units, schema = meter._bill_writes, meter._read_units, meter._schema

    def writes(self: Any, stage: str | None, pending: Any, applied: bool) -> None:
        if pending.operation == "TransactWriteItems" and f"txn_{stage}" in levers:
            pending.operation = "single writes"  # anything but a transaction: billed once
            try:
                return bill_writes(self, stage, pending, applied)
            finally:
                pending.operation = "TransactWriteItems"
        return bill_writes(self, stage, pending, applied)

    def reads(self: Any, stage: str | None, pending: Any, parsed: dict[str, Any]) -> float:
        params = pending.params
        if "eventual" in levers and stage in ("ingest", "decide") and pending.operation in ("GetItem", "BatchGetItem"):
            if pending.operation == "GetItem":
                pending.params = params | {"ConsistentRead": False}
            else:
                requests = params["RequestItems"].items()
                pending.params = params | {"RequestItems": {t: r | {"ConsistentRead": False} for t, r in requests}}
        try:
            return float(read_units(self, stage, pending, parsed))
        finally:
            pending.params = params

    dropped = {INDEXES[lever] for lever in levers if lever in INDEXES}

    def without(self: Any, table: str) -> Any:
        keys, indexes = schema(self, table)
        return keys, tuple(i for i in indexes if i.name not in dropped)

    meter._bill_writes, meter._read_units, meter._schema = writes, reads, without  # type: ignore[method-assign,assignment]


def main(levers: set[str], customers: int) -> dict[str, Any]:
    pull(levers)
    snapshots: list[capacity.Snapshot] = []
    summary = demo.run(
        customers=customers,
        seed=7,
        out=Path(tempfile.mkdtemp(prefix="levers-")),
        progress=False,
        cdk_out=synthesize(Path(tempfile.mkdtemp(prefix="levers-cdk-"))),
        inspect=lambda emulation: snapshots.append(capacity.Snapshot.of(emulation)),
        metered=True,
    )
    found = capacity.figures(snapshots[0], summary["events_published"], Prices.load())
    moved = [k for k in found if k.startswith("cost") or k.endswith("_cost_per_million_events_usd")]
    return {"levers": sorted(levers), "events": summary["events_published"]} | {
        k: found[k] for k in [*moved, "wru_per_event", "rru_per_event"]
    }


if __name__ == "__main__":
    chosen = set(filter(None, (sys.argv[1] if len(sys.argv) > 1 else "").split(",")))
    print(json.dumps(main(chosen, int(sys.argv[2]) if len(sys.argv) > 2 else 300)))
