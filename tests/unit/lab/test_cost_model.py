"""The cost arithmetic of the bench (``nextbest_lab.cost``) and the price table it reads (``docs/prices.toml``), and
decide's rate per profile at the table's quota (``nextbest_lab.capacity``)."""

import re

import pytest
from nextbest_lab.capacity import TABLE_UNITS_PER_S, profiles_per_s
from nextbest_lab.cost import Price, Prices, Usage, cost, floor, gb_seconds, lambda_seconds, per_million


@pytest.fixture(scope="module")
def prices() -> Prices:
    return Prices.load()


def test_every_price_in_the_table_says_where_it_comes_from_and_when_it_was_read(prices):
    assert prices.prices
    for name, price in prices.prices.items():
        assert price.usd >= 0 and price.per > 0 and price.unit, name
        assert "https://" in price.source, name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.read), name


def test_the_table_prices_everything_the_cost_model_uses(prices):
    assert set(cost(Usage(), prices)) == {"eventbridge", "scheduler", "sqs", "sns", "lambda", "dynamodb"}
    assert prices.latency_s("dynamodb", "TransactWriteItems") > prices.latency_s("dynamodb", "GetItem") > 0
    assert prices.latency_s("nobody", "Knows") == prices.latency_ms["default"] / 1000


def test_a_price_is_per_its_unit():
    assert Price(usd=0.40, per=1_000_000, unit="request", source="", read="").of(2_500_000) == pytest.approx(1.0)


FLAT = Prices(
    {
        name: Price(usd=usd, per=1_000_000, unit="", source="", read="")
        for name, usd in {
            "eventbridge_event": 1.0,
            "scheduler_invocation": 1.0,
            "scheduler_api_call": 0.0,
            "sqs_request": 0.4,
            "sns_publish": 0.5,
            "lambda_request": 0.2,
            "lambda_arm_gb_second": 1_000_000 * 0.0000133334,
            "dynamodb_write_request_unit": 0.625,
            "dynamodb_read_request_unit": 0.125,
        }.items()
    },
    vcpu_memory_mb=1769,
    latency_ms={"default": 10, "dynamodb.PutItem": 6},
)


def test_dollars_per_million_add_up_by_service():
    usage = Usage(events_put=1, sqs_requests=3, sns_publishes=0.1, scheduler_invocations=0.5, scheduler_calls=2,
                  lambda_requests=0.1, lambda_gb_seconds=0.01, wru=12, rru=5)  # fmt: skip
    by_service = {k: v * 1e6 for k, v in cost(usage, FLAT).items()}
    assert by_service == pytest.approx(
        {
            "eventbridge": 1.0,
            "scheduler": 0.5,
            "sqs": 1.2,
            "sns": 0.05,
            "lambda": 0.02 + 0.133334,
            "dynamodb": 7.5 + 0.625,
        }
    )
    assert per_million(usage, FLAT) == pytest.approx(sum(by_service.values()))
    assert (usage + usage).wru == 24


def test_a_functions_code_runs_on_the_share_of_a_vcpu_its_memory_buys_and_waits_for_each_call():
    assert lambda_seconds(0.010, 1769, {}, FLAT) == pytest.approx(0.010)
    assert lambda_seconds(0.010, 3538, {}, FLAT) == pytest.approx(0.010)  # a second vCPU does not help one thread
    assert lambda_seconds(0.010, 512, {}, FLAT) == pytest.approx(0.010 * 1769 / 512)
    calls = {("dynamodb", "PutItem"): 2, ("sqs", "SendMessage"): 1}
    assert lambda_seconds(0.0, 512, calls, FLAT) == pytest.approx(2 * 0.006 + 0.010)
    assert gb_seconds(2.0, 512) == 1.0


def test_the_floor_is_one_event_through_a_queue_in_batches_and_one_small_write():
    least = floor(own_seconds_per_event=0.0005, memory_mb=512, batch_size=10, prices=FLAT)
    assert (least.events_put, least.sqs_requests, least.lambda_requests, least.wru) == (1, 1.2, 0.1, 1)
    assert least.rru == least.scheduler_invocations == least.sns_publishes == 0
    seconds = 0.0005 * 1769 / 512 + 0.006
    assert least.lambda_gb_seconds == pytest.approx(seconds / 2)
    assert per_million(least, FLAT) == pytest.approx(1.0 + 0.48 + 0.02 + seconds / 2 * 13.3334 + 0.625)


def test_decide_keeps_up_with_profiles_until_the_table_quota_binds():
    assert profiles_per_s(3, 2) == pytest.approx(TABLE_UNITS_PER_S / 3)  # the write quota binds
    assert profiles_per_s(1, 10) == pytest.approx(TABLE_UNITS_PER_S / 10)  # the read quota binds


def test_the_standing_cost_counts_each_resource_alarm_metric_and_poll_of_a_template(prices):
    from nextbest_lab.cost import MONTH_HOURS, standing

    def alarm(*metrics):
        return {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Metrics": list(metrics)}}

    read, band = {"MetricStat": {}}, {"Expression": "ANOMALY_DETECTION_BAND(m0, 3)"}
    decide = {"MemorySize": 1024, "Environment": {"Variables": {"POWERTOOLS_SERVICE_NAME": "decide"}}}
    resources = [
        {"Type": "AWS::KMS::Key"}, {"Type": "AWS::SecretsManager::Secret"}, {"Type": "AWS::SecretsManager::Secret"},
        alarm(read), alarm({"Expression": "100 * a / b"}, read, read), alarm(band, read),
        {"Type": "AWS::CloudWatch::Dashboard"}, {"Type": "AWS::Lambda::Function", "Properties": decide},
        {"Type": "AWS::Scheduler::Schedule", "Properties": {"ScheduleExpression": "rate(1 minute)"}},
        {"Type": "AWS::Scheduler::Schedule", "Properties": {"ScheduleExpression": "at(2026-12-24T09:00:00)"}},
    ]  # fmt: skip
    found = {s.what: (s.count, s.usd) for s in standing({"Resources": dict(enumerate(resources))}, prices)}
    assert found["KMS keys"] == (1, 1.0) and found["secrets"] == (2, pytest.approx(0.8))
    assert found["alarm metrics"] == (1 + 2 + 3, pytest.approx(0.6)) and found["dashboards"] == (1, 3.0)
    polls, usd = found["due-index polls"]
    assert polls == MONTH_HOURS * 60  # the one-time schedule is no poll
    # a Scheduler run ($1 a million), 3 SQS requests ($0.40), a Lambda request ($0.20), half a read unit ($0.125)
    # and 5 ms of a 1 GB function: about $2.52 a million polls
    assert usd == pytest.approx(polls * (1.0 + 1.2 + 0.2 + 0.0625 + 0.005 * 0.0000133334 * 1e6) / 1e6)


def test_an_event_is_not_charged_the_due_index_polls_a_stack_makes_whatever_its_traffic(prices):
    """The polls are priced monthly by ``standing``; what an event costs keeps decide's work on each due profile and
    each one-time alarm, and leaves out only what a poll uses whatever it finds."""
    from nextbest_lab.capacity import Snapshot, _Run
    from nextbest_lab.cost import poll_usage

    from infra.local.emulator.metering import Call, Metering

    metering = Metering(runtime=None)
    for target, fired in (("rate", 5), ("at", 2)):
        metering.calls[Call(None, "scheduler", "Invoke", target)] += fired
    for operation in ("SendMessage", "ReceiveMessage", "DeleteMessageBatch"):
        metering.calls[Call(None, "sqs", operation, "decide-q")] += 7
    metering.usage["decide"].invocations, metering.usage["decide"].rru = 7, 5 * 0.5 + 4.0
    run = _Run(Snapshot(metering, memory_mb={"decide": 1024}, queues={"decide": {"decide-q"}}), events=100,
               prices=prices)  # fmt: skip
    used = run.stage_usage("decide")
    # the two alarms and what the polls found stay: their firing, their messages and invocations, the 4 read units
    assert (used.scheduler_invocations, used.sqs_requests, used.lambda_requests) == (2, 6, 2)
    assert used.rru == pytest.approx(4.0)
    assert run.standing_polls().scheduler_invocations == 5
    assert per_million(run.standing_polls(), prices) == pytest.approx(5 * per_million(poll_usage(1024, prices), prices))
