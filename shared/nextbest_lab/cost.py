"""Dollars from measured usage: the price table kept in the repository (``docs/prices.toml``: each price with its
source and the date it was read) applied to what one unit of work uses.

Only what the engine itself costs is priced: the events put on the bus, the queues, the functions, the table, the
schedules, the notifications' topic. The messages' own price (SES per e-mail, SMS per text and country) is the same
whatever the design, and is left out. :func:`standing` prices what a deployed stack pays every month whatever its
traffic (keys, secrets, alarms, the dashboard, the due index's poll), from the synthesized template.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PRICES = ROOT / "docs" / "prices.toml"


@dataclass(frozen=True)
class Price:
    usd: float
    per: float
    unit: str
    source: str
    read: str

    def of(self, quantity: float) -> float:
        """Dollars for ``quantity`` units."""
        return quantity * self.usd / self.per


@dataclass(frozen=True)
class Prices:
    prices: Mapping[str, Price]
    vcpu_memory_mb: float
    """Lambda memory that buys one vCPU; less memory buys that fraction of one."""
    latency_ms: Mapping[str, float]
    """Assumed latency of an AWS call as a function sees it, by ``service.Operation``, ``service`` or ``default``."""

    @classmethod
    def load(cls, path: Path = PRICES) -> Prices:
        table = tomllib.loads(path.read_text())
        duration = table.pop("lambda_duration")
        prices = {name: Price(**entry) for name, entry in table.items()}
        return cls(prices, float(duration["vcpu_memory_mb"]), dict(duration["latency_ms"]))

    def __getitem__(self, name: str) -> Price:
        return self.prices[name]

    def latency_s(self, service: str, operation: str) -> float:
        ms = self.latency_ms.get(f"{service}.{operation}", self.latency_ms.get(service, self.latency_ms["default"]))
        return ms / 1000


@dataclass(frozen=True)
class Usage:
    """What some work uses of each priced thing (per event, in the bench)."""

    events_put: float = 0.0
    scheduler_invocations: float = 0.0
    scheduler_calls: float = 0.0
    sqs_requests: float = 0.0
    sns_publishes: float = 0.0
    lambda_requests: float = 0.0
    lambda_gb_seconds: float = 0.0
    wru: float = 0.0
    rru: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def __mul__(self, times: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * times for f in fields(self)})


SERVICES = ("eventbridge", "scheduler", "sqs", "sns", "lambda", "dynamodb")


def cost(usage: Usage, prices: Prices) -> dict[str, float]:
    """Dollars, by service, of ``usage``."""
    return {
        "eventbridge": prices["eventbridge_event"].of(usage.events_put),
        "scheduler": prices["scheduler_invocation"].of(usage.scheduler_invocations)
        + prices["scheduler_api_call"].of(usage.scheduler_calls),
        "sqs": prices["sqs_request"].of(usage.sqs_requests),
        "sns": prices["sns_publish"].of(usage.sns_publishes),
        "lambda": prices["lambda_request"].of(usage.lambda_requests)
        + prices["lambda_arm_gb_second"].of(usage.lambda_gb_seconds),
        "dynamodb": prices["dynamodb_write_request_unit"].of(usage.wru)
        + prices["dynamodb_read_request_unit"].of(usage.rru),
    }


def per_million(usage: Usage, prices: Prices) -> float:
    """Dollars for a million of the units ``usage`` is given per."""
    return sum(cost(usage, prices).values()) * 1e6


def lambda_seconds(
    own_seconds: float, memory_mb: float, calls: Mapping[tuple[str, str], float], prices: Prices
) -> float:
    """Billed duration: the function's own code, slowed to the share of a vCPU its memory buys, plus the latency of
    each AWS call it waited for (``calls``: how many of each ``(service, operation)``)."""
    share = min(1.0, memory_mb / prices.vcpu_memory_mb)
    return own_seconds / share + sum(n * prices.latency_s(service, op) for (service, op), n in calls.items())


def gb_seconds(seconds: float, memory_mb: float) -> float:
    return seconds * memory_mb / 1024


def floor(own_seconds_per_event: float, memory_mb: float, batch_size: int, prices: Prices) -> Usage:
    """The least any design can spend on one event (issue 14): the event put on the bus, sent to a queue and
    received and deleted in batches, one Lambda invocation per batch running ingest's own code for it and one
    write of at most 1 KB, which it waits for."""
    seconds = lambda_seconds(own_seconds_per_event, memory_mb, {("dynamodb", "PutItem"): 1}, prices)
    return Usage(
        events_put=1,
        sqs_requests=1 + 2 / batch_size,
        lambda_requests=1 / batch_size,
        lambda_gb_seconds=gb_seconds(seconds, memory_mb),
        wru=1,
    )


MONTH_HOURS = 730
"""The hours AWS prices a month at."""


@dataclass(frozen=True)
class Standing:
    """Something a deployed stack pays for every month, traffic or not."""

    what: str
    count: int
    usd: float


def standing(template: Mapping[str, Any], prices: Prices) -> list[Standing]:
    """What the synthesized stack costs a month before any event, counted from its template: KMS keys, secrets,
    alarms (by the metrics each reads), dashboards, and the due index's poll (each ``rate(1 minute)`` schedule
    puts a message on decide's queue, which one decide invocation reads with one Query). Free tiers, and an
    account's free alarms and dashboards, are not counted: they may be spent by other stacks."""
    resources = list(template["Resources"].values())

    def each(kind: str, what: str, price: str) -> Standing:
        n = sum(r["Type"] == kind for r in resources)
        return Standing(what, n, prices[price].of(n))

    alarm_metrics = sum(_alarm_metrics(r["Properties"]) for r in resources if r["Type"] == "AWS::CloudWatch::Alarm")
    every_minute = [r for r in resources if r.get("Properties", {}).get("ScheduleExpression") == "rate(1 minute)"]
    polls = len(every_minute) * MONTH_HOURS * 60
    [decide_mb] = [
        r["Properties"]["MemorySize"]
        for r in resources
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME") == "decide"
    ]
    poll = poll_usage(decide_mb, prices)
    return [
        each("AWS::KMS::Key", "KMS keys", "kms_key_month"),
        each("AWS::SecretsManager::Secret", "secrets", "secret_month"),
        Standing("alarm metrics", alarm_metrics, prices["alarm_metric_month"].of(alarm_metrics)),
        each("AWS::CloudWatch::Dashboard", "dashboards", "dashboard_month"),
        Standing("due-index polls", polls, per_million(poll, prices) * polls / 1e6),
    ]


def poll_usage(decide_mb: float, prices: Prices) -> Usage:
    """What one poll of the due index uses whatever it finds: Scheduler fires it (one invocation) into decide's queue
    (one SendMessage), decide's event-source mapping receives and deletes it (two requests) and invokes decide, which
    reads its shard's window of the index with one Query (half a read unit at least: an index is read eventually
    consistent). What the poll finds costs more, per due profile: that is decide's work per trigger."""
    seconds = lambda_seconds(0.0, decide_mb, {("dynamodb", "Query"): 1}, prices)
    return Usage(scheduler_invocations=1, sqs_requests=3, lambda_requests=1,
                 lambda_gb_seconds=gb_seconds(seconds, decide_mb), rru=0.5)  # fmt: skip


def _alarm_metrics(alarm: Mapping[str, Any]) -> int:
    """The metrics an alarm is billed for: each it reads, three for an anomaly detection band."""
    metrics = alarm.get("Metrics") or [{"MetricStat": alarm}]
    read = sum("MetricStat" in m for m in metrics)
    bands = sum("ANOMALY_DETECTION_BAND" in m.get("Expression", "") for m in metrics)
    return read + 2 * bands
