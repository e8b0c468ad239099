"""Thousands of malformed events through the bus and ingest: no batch ever crashes, nothing is dropped."""

import json
import random
from pathlib import Path

from nextbest_lab.demo import emf_totals

from tests.conftest import EVENTS


def _drop_field(rng: random.Random, detail: dict) -> None:
    detail.pop(rng.choice(sorted(detail)))


def _wrong_type(rng: random.Random, detail: dict) -> None:
    detail[rng.choice(sorted(detail))] = rng.choice([None, 42, "", [], {}, "x" * 300, True, -1.5])


def _no_identifier(rng: random.Random, detail: dict) -> None:
    for key in ("customer_id", "anonymous_id", "email", "phone", "device_token"):
        detail.pop(key, None)


def _bad_time(rng: random.Random, detail: dict) -> None:
    detail["occurred_at"] = rng.choice(["2999-01-01T00:00:00Z", "yesterday", "2026-13-45T00:00:00Z", 0])


def _extra_field(rng: random.Random, detail: dict) -> None:
    detail["unexpected_" + str(rng.randrange(100))] = "value"


def _bad_email(rng: random.Random, detail: dict) -> None:
    detail["email"] = rng.choice(["not-an-email", "@x.org", "a@b", "a b@c.org"])


def _bad_phone(rng: random.Random, detail: dict) -> None:
    detail["phone"] = rng.choice(["0612345678", "+0123", "+1" + "9" * 20, "phone"])


def _oversized(rng: random.Random, detail: dict) -> None:
    detail["padding"] = "p" * rng.choice([70_000, 120_000])


def _bad_items(rng: random.Random, detail: dict) -> None:
    detail["items"] = [{"product_id": "p", "quantity": rng.choice([0, -1, 1000, "two"])}]


def _bad_event_id(rng: random.Random, detail: dict) -> None:
    detail["event_id"] = rng.choice(["", "has spaces", "x" * 200, None])


DETAIL_MISTAKES = {
    0: _drop_field, 1: _wrong_type, 2: _no_identifier, 3: _bad_time, 5: _extra_field, 6: _bad_email,
    7: _bad_phone, 8: _oversized, 9: _bad_items, 10: _bad_event_id,
}  # fmt: skip
BAD_TYPES = ["cart.update", "CART.UPDATED", "", "order.placed.v2", "customer.erased!"]


def mutations(rng: random.Random, event: dict) -> dict:
    """One producer mistake, of the kinds seen in the wild, applied to a valid event."""
    detail = json.loads(json.dumps(event["detail"]))
    kind = event["detail-type"]
    choice = rng.randrange(12)
    if choice == 4:
        kind = rng.choice(BAD_TYPES)
    elif choice in DETAIL_MISTAKES and (choice != 9 or "items" in detail):
        DETAIL_MISTAKES[choice](rng, detail)
    else:
        # EventBridge itself refuses a Detail that is not a JSON object, so that mistake never reaches us
        # (tests/unit/core/test_events.py feeds arbitrary text to the parser instead).
        detail = {"nested": {"deeply": [detail]}}
    return {"kind": kind, "detail": detail}


def test_given_thousands_of_malformed_events_then_each_is_either_applied_or_dead_lettered(emulation):
    rng = random.Random(5)
    samples = [json.loads(p.read_text()) for p in EVENTS.glob("*.json")]
    events = emulation.client("events")
    published = 0
    for batch in range(200):
        entries = []
        for n in range(10):
            broken = mutations(rng, rng.choice(samples))
            detail = broken["detail"]
            if isinstance(detail, dict) and "event_id" in detail and isinstance(detail["event_id"], str):
                detail["event_id"] = f"{detail['event_id']}-{batch}-{n}"
            entries.append(
                {
                    "EventBusName": emulation.output("BusName"),
                    "Source": "fuzz",
                    "DetailType": broken["kind"] or "empty",
                    "Detail": json.dumps(detail),
                }
            )
        result = events.put_events(Entries=entries)
        published += len(entries) - result["FailedEntryCount"]
        emulation.drain()
    emulation.flush_logs()
    [ingest] = [f for f in emulation.functions.values() if f.name == "ingest"]
    ingested = emf_totals(emulation.logs)["EventsIngested"]
    errors = [line for line in Path(ingest.log.name).read_text().splitlines() if '"level":"ERROR"' in line]
    sqs = emulation.client("sqs")
    rejected = 0
    for logical_id, url in emulation.physical.items():
        if logical_id.startswith("Ingest") and "DeadLetters" in logical_id:
            rejected += int(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                    "ApproximateNumberOfMessages"
                ]
            )
    assert published > 1900
    assert ingested + rejected == published  # nothing silently dropped
    assert rejected > published // 2
    assert ingest.records == published  # every record reached the handler once: no batch failed and retried
    assert errors == []
