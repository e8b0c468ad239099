"""Issue 14's figures, measured on the demo's stream: what each step uses per unit of work, the hottest shared item,
decide's rate per profile (there is no sweep), the table's item classes, and the cost per million events against
the floor.

Everything comes from the emulation's metering (``infra.local.emulator.metering``: capacity units by DynamoDB's
billing rules from the real requests and item sizes, and every other call by service and target) and from the table
as the demo leaves it. Units of work: ingest per event put on the bus, decide per record of its queue (a due trigger,
a release, a page of the sweep), deliver per delivery request, feedback per notification, unsubscribe per request.
The demo's shoppers never unsubscribe: the bench clicks some e-mails' links once the demo is over, and those requests
are reported per request only, never in the per-event totals and costs.
"""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nextbest.aws.store.table import document

from infra.local.emulator.scheduler import RECURRING
from nextbest_lab import cost
from nextbest_lab.cost import Prices, Usage
from nextbest_lab.item_classes import ITEM_CLASSES, classify, classify_item, lacks_declared_expiry, without_expiry

if TYPE_CHECKING:
    from infra.local.emulator import Emulation
    from infra.local.emulator.metering import Metering, StageUsage, Write

STAGES = {"ingest": "event", "decide": "trigger", "deliver": "message", "feedback": "notification",
          "tally": "record", "unsubscribe": "request"}  # fmt: skip
"""Each step, and the unit of work its figures are per (the tally's: a stream record its mapping passed it)."""
PIPELINE = ("ingest", "decide", "deliver", "feedback", "tally")
"""The steps the demo's stream runs through: per-event totals and costs are theirs (unsubscribe is clicked apart). The
tally's stream reads cost nothing ("Read requests made by AWS Lambda-based consumers of DynamoDB Streams are free",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html); its
invocations and writes count."""
CALLED = {"scheduler": ("scheduler",), "sqs": ("sqs",), "ses": ("ses", "sesv2"), "sns": ("sns",)}
"""The services whose calls per event are reported (by the name the figure uses: botocore's names)."""
SQS_BILLED = {"SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
              "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}  # fmt: skip
POLL = ("scheduler", "Invoke", RECURRING)
"""How the emulation counts a recurring schedule's firing: a poll of the due index."""
ITEM_WRITE_UNITS_PER_S = 1000
"""What one partition, so one item, takes: "each individual partition is limited to 1000 write units per second and
3000 read units per second" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html)."""
TABLE_UNITS_PER_S = 40_000
"""An on-demand table's default quota of read units and of write units a second: "bounded by 40,000 table-level read
and write throughput AWS service quota"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html)."""
UNSUBSCRIBE_CLICKS = 50
"""The demo's shoppers never unsubscribe; afterwards the bench clicks this many e-mails' one-click links."""


@dataclass
class Snapshot:
    """What the bench keeps of the emulation before it is torn down."""

    metering: Metering
    memory_mb: dict[str, int] = field(default_factory=dict)
    queues: dict[str, set[str]] = field(default_factory=dict)
    """The queues each function's event-source mappings read."""
    batch_size: dict[str, int] = field(default_factory=dict)
    items: Counter[str] = field(default_factory=Counter)
    """Items in the table, by class."""
    missing_expiry: Counter[str] = field(default_factory=Counter)
    """Items of a class meant to expire that carry no ``expires_at``, by class."""
    sends: Counter[str] = field(default_factory=Counter)
    """Send decisions, by campaign."""

    @classmethod
    def of(cls, emulation: Emulation) -> Snapshot:
        found = cls(emulation.metering)
        for function in emulation.functions.values():
            props = emulation.template["Resources"][function.logical_id]["Properties"]
            found.memory_mb[function.name] = int(props.get("MemorySize", 128))
        for mapping in emulation.mappings:
            found.queues.setdefault(mapping.function.name, set()).add(mapping.queue_url.rsplit("/", 1)[-1])
            found.batch_size[mapping.function.name] = mapping.batch_size
        ddb = emulation.client("dynamodb")
        for page in ddb.get_paginator("scan").paginate(TableName=emulation.output("TableName")):
            for item in page["Items"]:
                found.count(item)
        return found

    def count(self, item: dict[str, Any]) -> None:
        kind = classify_item(item).name
        self.items[kind] += 1
        self.missing_expiry[kind] += lacks_declared_expiry(item)
        if kind == "decision":
            doc = document(item)
            self.sends[doc.get("campaign_id") or ""] += doc["action"] == "send"


def click_unsubscribe_links(emulation: Emulation, limit: int = UNSUBSCRIBE_CLICKS) -> int:
    """Follow the one-click ``List-Unsubscribe`` link (RFC 8058: a POST) of the first ``limit`` e-mails sent."""
    clicked = 0
    for message in emulation.sent_emails()[:limit]:
        link = (email.message_from_string(message.raw_data)["List-Unsubscribe"] or "").strip("<>")
        if link:
            emulation.call_url(link, "POST", "List-Unsubscribe=One-Click")
            clicked += 1
    return clicked


def figures(snapshot: Snapshot, events: int, prices: Prices) -> dict[str, Any]:
    """Every figure of issue 14 for a demo run of ``events`` events."""
    if snapshot.metering.errors:
        raise RuntimeError(f"metering failed, figures would be wrong: {snapshot.metering.errors[:3]}")
    run = _Run(snapshot, events, prices)
    return (
        run.units()
        | run.calls()
        | run.hot_item()
        | run.costs()
        | run.sweep()
        | item_figures(snapshot)
        | decision_updates(snapshot.metering.writes)
    )


@dataclass
class _Run:
    snapshot: Snapshot
    events: int
    prices: Prices

    @property
    def metering(self) -> Metering:
        return self.snapshot.metering

    def usage(self, stage: str) -> StageUsage:
        return self.metering.usage[stage]

    def work(self, stage: str) -> int:
        """How many units of work a step did."""
        if stage == "ingest":
            return self.events
        usage = self.usage(stage)
        return usage.invocations if STAGES[stage] == "request" else usage.records

    def units(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for stage, unit in STAGES.items():
            usage, work = self.usage(stage), self.work(stage)
            found[f"{stage}_wru_per_{unit}"] = _ratio(usage.wru, work)
            found[f"{stage}_rru_per_{unit}"] = _ratio(usage.rru, work)
            found[f"{stage}_lambda_ms_per_{unit}"] = _ratio(self.lambda_seconds(stage) * 1e3, work)
            if stage in PIPELINE[1:]:
                found[f"{stage}_{unit}s_per_event"] = _ratio(work, self.events)
        found["wru_per_event"] = _ratio(sum(self.usage(s).wru for s in PIPELINE), self.events)
        found["rru_per_event"] = _ratio(sum(self.usage(s).rru for s in PIPELINE), self.events)
        return found

    def calls(self) -> dict[str, Any]:
        """Calls the functions made, per event, by service and step."""
        found: dict[str, Any] = {}
        for service, names in CALLED.items():
            total = 0
            for stage in PIPELINE:
                made = sum(n for c, n in self.metering.calls.items() if c.stage == stage and c.service in names)
                found[f"{stage}_{service}_calls_per_event"] = _ratio(made, self.events)
                total += made
            found[f"{service}_calls_per_event"] = _ratio(total, self.events)
        return found

    def hot_item(self) -> dict[str, Any]:
        """The most-written item not keyed by one customer, its writes and write units per send (of its campaign),
        and the sends a second one campaign could make before that item reaches a partition's limit."""
        writes: Counter[tuple[str, ...]] = Counter()
        units: Counter[tuple[str, ...]] = Counter()
        for w in self.metering.writes:
            if classify(*w.key[:2]).shared:
                writes[w.key] += 1
                units[w.key] += w.units
        if not writes:
            return {"hot_item": None, "hot_item_writes_per_send": 0.0, "hot_item_wru_per_send": 0.0,
                    "campaign_send_ceiling_per_s": None}  # fmt: skip
        [(key, most)] = writes.most_common(1)
        campaign = key[0][2:] if key[0].startswith("s:") else None
        sends = self.snapshot.sends[campaign] if campaign is not None else sum(self.snapshot.sends.values())
        per_send = _ratio(units[key], sends)
        return {
            "hot_item": " ".join(key),
            "hot_item_sends": sends,
            "hot_item_writes_per_send": _ratio(most, sends),
            "hot_item_wru_per_send": per_send,
            "campaign_send_ceiling_per_s": round(ITEM_WRITE_UNITS_PER_S / per_send, 1) if per_send else None,
        }

    def stage_calls(self, stage: str | None) -> Counter[tuple[str, str]]:
        made: Counter[tuple[str, str]] = Counter()
        for c, n in self.metering.calls.items():
            if c.stage == stage:
                made[(c.service, c.operation)] += n
        return made

    def lambda_seconds(self, stage: str) -> float:
        """The billed duration of a step over the run (``cost.lambda_seconds``)."""
        memory = self.snapshot.memory_mb.get(stage, 128)
        return cost.lambda_seconds(self.usage(stage).own_seconds, memory, self.stage_calls(stage), self.prices)

    def stage_usage(self, stage: str) -> Usage:
        """What a step used over the run: its own calls and capacity, the requests on the queues it reads (sends by
        the emulation, receives and deletes of its event-source mapping), and what AWS services did for it: the
        events put on the bus and routed to ingest's queues, the notifications SNS published and delivered to
        feedback's, the schedules that fired into decide's. Less, for decide, what its polls of the due index use
        whatever they find (:meth:`standing_polls`)."""
        usage, queues = self.usage(stage), self.snapshot.queues.get(stage, set())
        sqs = sns = put = fired = 0
        for c, n in self.metering.calls.items():
            on_its_queue = c.stage == stage or (c.stage is None and c.target in queues)
            if c.service == "sqs" and c.operation in SQS_BILLED and on_its_queue:
                sqs += n
                fired += n if c.stage is None and c.operation == "SendMessage" and stage == "decide" else 0
            if c.service == "sns" and c.operation == "Publish" and c.target != "sms":
                sns += n if c.stage == stage or (c.stage is None and stage == "feedback") else 0
            if c.stage is None and c.service == "eventbridge" and c.operation == "PutEvents" and stage == "ingest":
                put += self.metering.entries[c]
        delivered = put + (sns if stage == "feedback" else 0)  # EventBridge rules and SNS subscriptions send to SQS
        memory = self.snapshot.memory_mb.get(stage, 128)
        used = Usage(
            events_put=put,
            scheduler_invocations=fired,
            scheduler_calls=sum(n for (service, _), n in self.stage_calls(stage).items() if service == "scheduler"),
            sqs_requests=sqs + delivered,
            sns_publishes=sns,
            lambda_requests=usage.invocations,
            lambda_gb_seconds=cost.gb_seconds(self.lambda_seconds(stage), memory),
            wru=usage.wru,
            rru=usage.rru,
        )
        return used - self.standing_polls() if stage == "decide" else used

    def standing_polls(self) -> Usage:
        """What the run's polls of the due index used whatever they found (``cost.poll_usage``). A deployed stack
        polls every minute, traffic or not: ``cost.standing`` prices that as a monthly cost, so it is no part of what
        an event costs (the emulation skips the polls that would find nothing, so the demo counts a few of them,
        more per event the sparser its stream). What a poll finds costs decide per trigger, and stays in. Each poll is
        counted as ``standing`` counts it, received and invoked alone; polls of two shards due the same minute can
        share one (on the demo's stream, 562 polls came in 525 invocations: under 1 % of decide's cost)."""
        polls = sum(n for c, n in self.metering.calls.items() if (c.service, c.operation, c.target) == POLL)
        return cost.poll_usage(self.snapshot.memory_mb.get("decide", 128), self.prices) * polls

    def costs(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        total = Usage()
        for stage in PIPELINE:
            used = _per(self.stage_usage(stage), self.events)
            total += used
            found[f"{stage}_cost_per_million_events_usd"] = round(cost.per_million(used, self.prices), 3)
        clicks = _per(self.stage_usage("unsubscribe"), self.work("unsubscribe"))
        found["unsubscribe_cost_per_million_requests_usd"] = round(cost.per_million(clicks, self.prices), 3)
        for service, dollars in cost.cost(total, self.prices).items():
            found[f"cost_{service}_per_million_events_usd"] = round(dollars * 1e6, 3)
        ingest = self.usage("ingest")
        floor = cost.floor(
            ingest.own_seconds / max(self.events, 1),
            self.snapshot.memory_mb.get("ingest", 128),
            self.snapshot.batch_size.get("ingest", 10),
            self.prices,
        )
        found["cost_standing_polls_left_out_per_million_events_usd"] = round(
            cost.per_million(_per(self.standing_polls(), self.events), self.prices), 3
        )
        found["lambda_gb_s_per_event"] = round(total.lambda_gb_seconds, 6)
        found["cost_per_million_events_usd"] = round(cost.per_million(total, self.prices), 3)
        found["cost_floor_per_million_events_usd"] = round(cost.per_million(floor, self.prices), 3)
        found["cost_ratio"] = round(cost.per_million(total, self.prices) / cost.per_million(floor, self.prices), 2)
        return found

    def sweep(self) -> dict[str, Any]:
        """There is no sweep: lapse checks are triggers of the due index (``nextbest.core.due``), each decided at its
        own time with the others, so nothing serial bounds them; decide's work per profile against the table's quota
        does (:func:`profiles_per_s`). Profiles: decide's records but the polls and alarms that woke it."""
        decide = self.usage("decide")
        queues = self.snapshot.queues.get("decide", set())
        woken = sum(
            n
            for c, n in self.metering.calls.items()
            if c.stage is None and c.operation == "SendMessage" and c.target in queues
        )
        profiles = max(decide.records - woken, 1)
        seconds = self.lambda_seconds("decide") / profiles
        return {
            "sweep": "none",
            "sweep_profiles_per_s_at_default_quota": None,
            "decide_ms_per_profile": round(seconds * 1e3, 2),
            "decide_profiles_per_s_at_default_quota": round(
                profiles_per_s(decide.wru / profiles, decide.rru / profiles), 1
            ),
        }


def profiles_per_s(wru_per_profile: float, rru_per_profile: float) -> float:
    """How many profiles a second decide can decide for at the table's default quota: an on-demand table takes
    40,000 write and 40,000 read units a second by default (``TABLE_UNITS_PER_S``), each profile costs ``w`` and
    ``r`` of them, and decide's concurrency grows with its queue, so rate = min(40,000 / w, 40,000 / r). (Profiles
    are keyed by customer, spread over partitions.)"""
    bounds = [TABLE_UNITS_PER_S / w for w in (wru_per_profile, rru_per_profile) if w]
    return min(bounds) if bounds else float("inf")


def item_figures(snapshot: Snapshot) -> dict[str, Any]:
    """The item classes, those without an expiry or a bound, and what the demo's table holds of them."""
    unbounded = without_expiry()
    total = sum(snapshot.items.values())
    return {
        "item_classes": len(ITEM_CLASSES),
        "item_classes_without_expiry": len(unbounded),
        "item_classes_without_expiry_names": unbounded,
        "items_without_expiry_share": _ratio(sum(snapshot.items[c] for c in unbounded), total),
        "items_missing_declared_expiry": sum(snapshot.missing_expiry.values()),
    }


def decision_updates(writes: Iterable[Write]) -> dict[str, Any]:
    """Write units of an update of a decision record (a status change, an annotation): the largest and the mean."""
    units = [w.units for w in writes if w.operation == "UpdateItem" and w.key[0].startswith("d:")]
    return {
        "decision_update_wru_max": max(units, default=0),
        "decision_update_wru_mean": _ratio(sum(units), len(units)),
    }


def _per(usage: Usage, events: int) -> Usage:
    return Usage(**{name: value / max(events, 1) for name, value in vars(usage).items()})


def _ratio(amount: float, per: float) -> float:
    return round(amount / per, 4) if per else 0.0
