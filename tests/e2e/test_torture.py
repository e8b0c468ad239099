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
    # Then every fault happened, and the statistics equal a recount from the decisions and the orders
    assert set(outcome["faults"]) == kinds
    assert outcome["counters_off"] == 0, outcome["findings"]["counters_off"]
    assert outcome["order_credits_recounted"] > 0  # orders were credited, and their credits recounted


def test_under_transaction_conflicts_throttling_and_concurrent_workers_nothing_is_lost_stuck_or_miscounted(
    cdk_out, tmp_path
):
    # Given a run whose DynamoDB writes are cancelled by conflicting transactions (TransactionConflict on a
    # transaction's item, TransactionConflictException on a single write) and throttled, one time in five, while
    # batches are handed to a second worker that runs in the middle of the first's writes, and workers crash
    kinds = frozenset({"dynamodb.transaction_conflict", "dynamodb.throttle", "sqs.second_worker", "sqs.crash"})
    results = torture.run(customers=40, days=2, rates=[0.2], out=tmp_path, cdk_out=cdk_out, kinds=kinds)
    outcome = results["rates"]["0.2"]
    zero = {key: outcome[key] for key in torture.MUST_BE_ZERO}
    # Then every fault happened; no order is lost, no decision is left queued or sending, nothing is sent twice or
    # past a cap, and the statistics the tally kept equal a recount from the decision records and the orders
    assert zero == dict.fromkeys(torture.MUST_BE_ZERO, 0), outcome["findings"]
    assert set(outcome["faults"]) == kinds, outcome["faults"]
    assert outcome["faults"]["dynamodb.transaction_conflict"] > 0
