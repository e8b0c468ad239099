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
    assert not passes(record("INSERT", "BODY", {"messages": {"B": "eJw="}}))  # a decision's rendered messages
    assert not passes(record("REMOVE", "DECISION", None))  # erased or expired: nothing to count
    assert mapping["TumblingWindowInSeconds"] > 0  # what names the shard in the event
    # a batch gathers for Lambda's longest window, within one tumbling window; one that keeps failing is described
    # on the failed-batches queue before its records expire
    assert mapping["MaximumBatchingWindowInSeconds"] == 300 <= mapping["TumblingWindowInSeconds"]
    assert 0 < mapping["MaximumRecordAgeInSeconds"] < 24 * 3600
    assert "OnFailure" in mapping["DestinationConfig"]


def test_a_stream_batch_gathers_until_its_window_closes_on_the_emulated_clock_or_it_is_full():
    from datetime import UTC, datetime, timedelta

    from infra.local.emulator.event_sources import StreamMapping

    t0 = datetime(2026, 11, 2, 9, 0, 2, tzinfo=UTC)
    mapping = StreamMapping(None, "arn", 3, [], window=timedelta(seconds=300), tumbling=timedelta(seconds=900))
    mapping.pending = [(t0, {"n": 1}), (t0 + timedelta(seconds=60), {"n": 2})]
    assert mapping.batch(t0 + timedelta(seconds=299), close=False) == []  # still gathering
    assert mapping.closes_at() == t0 + timedelta(seconds=300)
    assert mapping.batch(t0 + timedelta(seconds=300), close=False) == [{"n": 1}, {"n": 2}]
    assert mapping.batch(t0, close=True) == [{"n": 1}, {"n": 2}]  # a test settling: as if the window passed
    mapping.pending += [(t0 + timedelta(seconds=61), {"n": 3}), (t0 + timedelta(seconds=62), {"n": 4})]
    assert mapping.batch(t0 + timedelta(seconds=62), close=False) == [{"n": 1}, {"n": 2}, {"n": 3}]  # full
    mapping.pending = [(t0, {"n": 1}), (datetime(2026, 11, 2, 9, 15, tzinfo=UTC), {"n": 2})]
    assert mapping.batch(t0 + timedelta(seconds=1), close=False) == [{"n": 1}]  # the next tumbling window's: apart
