"""The tally's mapping filters, read from the template and applied as Lambda's event filtering would: the
emulation hands the tally only what it counts something of."""

import json

from infra.local.emulator.event_sources import matches


def record(event: str, sk: str, new: dict | None) -> dict:
    stream = {"Keys": {"pk": {"S": "x"}, "sk": {"S": sk}}, "SequenceNumber": "1"}
    if new is not None:
        stream["NewImage"] = {"pk": {"S": "x"}, "sk": {"S": sk}, **new}
    return {"eventName": event, "dynamodb": stream}


def test_only_decision_writes_and_profile_writes_carrying_credits_pass(template):
    resources = template["Resources"].values()
    mappings = [r["Properties"] for r in resources if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    [mapping] = [m for m in mappings if "StartingPosition" in m]  # the stream's (queues' mappings have none)
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]

    def passes(r: dict) -> bool:
        return any(matches(p, r) for p in patterns)

    assert passes(record("INSERT", "DECISION", {"status": {"S": "queued"}}))
    assert passes(record("MODIFY", "DECISION", {"status": {"S": "sent"}}))
    assert passes(record("MODIFY", "PROFILE", {"credits": {"S": "[]"}}))
    assert not passes(record("MODIFY", "PROFILE", {"doc": {"S": "{}"}}))
    assert not passes(record("INSERT", "EVENT", {}))
    assert not passes(record("REMOVE", "DECISION", None))  # erased or expired: nothing to count
    assert mapping["TumblingWindowInSeconds"] > 0  # what names the shard in the event
