"""Thousands of malformed events through the bus and ingest: no batch ever crashes, nothing is dropped."""

import json
import random
from pathlib import Path

from nextbest_lab.demo import emf_totals

from tests.conftest import EVENTS


def mutations(rng: random.Random, event: dict) -> dict:
    """One producer mistake, of the kinds seen in the wild, applied to a valid event."""
    detail = json.loads(json.dumps(event["detail"]))
    kind = event["detail-type"]
    choice = rng.randrange(12)
    if choice == 0:
        detail.pop(rng.choice(sorted(detail)))
    elif choice == 1:
        detail[rng.choice(sorted(detail))] = rng.choice([None, 42, "", [], {}, "x" * 300, True, -1.5])
    elif choice == 2:
        for key in ("customer_id", "anonymous_id", "email", "phone", "device_token"):
            detail.pop(key, None)
    elif choice == 3:
        detail["occurred_at"] = rng.choice(["2999-01-01T00:00:00Z", "yesterday", "2026-13-45T00:00:00Z", 0])
    elif choice == 4:
        kind = rng.choice(["cart.update", "CART.UPDATED", "", "order.placed.v2", "customer.erased!"])
    elif choice == 5:
        detail["unexpected_" + str(rng.randrange(100))] = "value"
    elif choice == 6:
        detail["email"] = rng.choice(["not-an-email", "@x.org", "a@b", "a b@c.org"])
    elif choice == 7:
        detail["phone"] = rng.choice(["0612345678", "+0123", "+1" + "9" * 20, "phone"])
    elif choice == 8:
        detail["padding"] = "p" * rng.choice([70_000, 120_000])
    elif choice == 9 and "items" in detail:
        detail["items"] = [{"product_id": "p", "quantity": rng.choice([0, -1, 1000, "two"])}]
    elif choice == 10:
        detail["event_id"] = rng.choice(["", "has spaces", "x" * 200, None])
    else:
        # EventBridge itself refuses a Detail that is not a JSON object, so that mistake never reaches us
        # (tests/unit/test_events.py feeds arbitrary text to the parser instead).
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
