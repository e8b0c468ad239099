"""A small torture run without faults: the harness finds nothing to report, and its table has every row."""

import json

from nextbest_lab import torture


def test_a_small_run_without_faults_reports_zero_everywhere(cdk_out, tmp_path):
    results = torture.run(customers=40, days=2, rates=[0.0], out=tmp_path, cdk_out=cdk_out)
    outcome = results["rates"]["0"]
    assert {key: outcome[key] for key in torture.MUST_BE_ZERO} == dict.fromkeys(torture.MUST_BE_ZERO, 0)
    assert torture.clean(results)
    assert outcome["faults_injected"] == 0 and outcome["emails_sent"] > 0 and outcome["events_valid"] > 0
    # Only the simulator's malformed events were dead-lettered, each with its reason
    assert outcome["dlq_entries"] == outcome["events_rejected"] > 0
    assert all(not key.endswith(":(none)") for key in outcome["dlq_by_reason"])
    assert json.loads((tmp_path / "results.json").read_text())["rates"]["0"]["events_lost"] == 0
    assert [key for key, _ in torture.rows(results)][: len(torture.ROWS)] == [key for key, _ in torture.ROWS]


def test_counters_equal_a_recount_of_the_decisions_when_stream_batches_crash_run_twice_and_come_again(
    cdk_out, tmp_path
):
    # Given a run whose tally batches (and every other mapping's) crash mid-way, run on two workers at once and are
    # handed again after they succeeded, and whose DynamoDB writes time out after taking effect
    kinds = frozenset({"stream.redelivered", "sqs.crash", "sqs.second_worker", "dynamodb.timeout_after_write"})
    results = torture.run(customers=40, days=2, rates=[0.2], out=tmp_path, cdk_out=cdk_out, kinds=kinds)
    outcome = results["rates"]["0.2"]
    # Then every fault happened, and the statistics equal a recount from the decisions
    assert set(outcome["faults"]) == kinds
    assert outcome["counters_off"] == 0, outcome["findings"]["counters_off"]
