"""``make demo``: a simulated shop's week through the whole pipeline on the local emulation.

The violation counters (opt-outs, quiet hours, caps, duplicates) are computed from what moto recorded as sent
(SES and SNS), checked against the simulator's ground truth and the house policy (``nextbest_lab.audit``), never
from the engine's own bookkeeping. Shoppers respond to the messages
that reach them (``simulator.ResponseModel``: opens, clicks, extra orders), and ``true_effects`` in the summary
holds what each campaign really does, and did to this run's recipients, for the uplift report to be read against.
"""

from __future__ import annotations

import bisect
import email
import functools
import heapq
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nextbest.aws.store import Store
from nextbest.core import clock
from nextbest.core.attribution import WINDOW, follow_up_span
from nextbest.core.campaigns import Campaign, load_campaigns, load_policy
from nextbest.core.clock import ManualClock
from nextbest.core.decision import Decision

from infra.local import synthesize
from infra.local.emulator import Emulation, Faults, recipients
from nextbest_lab import audit, ope, report, scan
from nextbest_lab.audit import Sent
from nextbest_lab.simulator import (
    Exposure,
    PlacedOrder,
    Population,
    ResponseModel,
    contacts,
    mailbox_scenario,
    reaches,
    sample_truth,
    shoppers_orders,
    simulate,
)

if TYPE_CHECKING:
    from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".nextbest" / "demo"
CAMPAIGNS = ROOT / "campaigns"
ARM_COUNTS_TTL = timedelta(hours=12)
"""How long decide reuses the variant counters in the demo, whose clock runs thousands of times faster than the
wall: a deployed decide re-reads them after a minute (``DecideSettings.arm_counts_ttl_s``). On the simulated
clock, the same for every run of a seed; the lab's experiment uses the same span."""
MEASUREMENT = {"holdoutFloorPercent": "50"}
"""The context the demo's own stack is synthesized with: every campaign holds out half of its audience (a launch
measurement, ``nextbest.core.campaigns.with_holdout_floor``). With the campaigns' own holdouts (10%, and 5% global
control) a campaign needs about 700 decisions before its control arm holds the 100 recipients an interval waits for:
a simulated week of a thousand shoppers, far more than a first run should take. Half held out gets the cart reminder
there with a few hundred shoppers over a few days; a deployed stack uses the campaigns' own holdouts unless it is
given this context too."""
STEP = timedelta(minutes=10)
"""How far the clock moves between publishing rounds (events are published in the round they occurred in; the
schedules and delayed messages within a round still fire at their own times). Every round costs its requests
(a PutEvents, a receive and a delete per queue with work, a read of the batch's profiles), so fewer, fuller rounds
are cheaper: 10 minutes instead of 5 took a tenth off the demo's time and changed none of its decisions (450
shoppers, 7 days, seed 7). Events still arrive well before the shortest trigger delay (an hour)."""
LINK = re.compile(r"[?&]nb=([0-9a-f-]{36})")
"""The decision id a message's links carry (``nextbest.core.links``): what tells which decision a text was for."""
URL = re.compile(r"https?://[^\s\"'<>]+[?&]nb=[0-9a-f-]{36}")
"""A message's tracked link, which a shopper's click goes through."""


def run(
    customers: int = 2000,
    seed: int = 7,
    days: int = 5,
    out: Path = OUT,
    progress: bool = True,
    cdk_out: Path | None = None,
    inspect: Callable[[Emulation], object] | None = None,
    faults: Faults | None = None,
    check: Callable[[Run], dict[str, Any]] | None = None,
    metered: bool = False,
) -> dict[str, Any]:
    """Run the demo; ``inspect`` sees the emulation before it is torn down (the benchmark counts calls, and asks for
    the requests to be ``metered``: billed by DynamoDB's rules, ``infra.local.emulator.metering``).

    ``faults`` are injected as AWS would produce them; ``check`` sees the finished run before the emulation is torn
    down, and what it returns joins the summary (the torture's outcome)."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    if cdk_out is None:
        cdk_out = synthesize(Path(tempfile.mkdtemp(prefix="nextbest-cdk-")), MEASUREMENT)
    population = simulate(customers=customers, days=days, seed=seed)
    from moto import mock_aws

    manual = ManualClock(population.start)
    clock.install(manual)
    try:
        with mock_aws():
            emulation = Emulation(cdk_out, manual, out / "logs", faults=faults, metered=metered).deploy()
            emulation.environment("decide")["ARM_COUNTS_TTL_S"] = str(ARM_COUNTS_TTL.total_seconds())
            sent, shoppers = _drive(emulation, population, progress)
            summary = _summarize(emulation, population, sent, out, shoppers)
            if check is not None:
                summary |= check(Run(emulation, population, sent, shoppers))
            if inspect is not None:
                inspect(emulation)
    finally:
        clock.reset()
        if faults is not None:
            faults.uninstall()
    summary["elapsed_s"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@dataclass(frozen=True)
class Run:
    """A finished run, before its emulation is torn down."""

    emulation: Emulation
    population: Population
    sent: list[Sent]
    """What moto recorded as sent, in order."""
    shoppers: Shoppers


def _drive(emulation: Emulation, population: Population, progress: bool) -> tuple[list[Sent], Shoppers]:
    """Publish the events in time order, letting schedules fire and queues drain as the clock moves."""
    sent: list[Sent] = []
    recorder = Recorder(emulation)
    shoppers = Shoppers(emulation, ResponseModel(seed=population.seed), load_campaigns(CAMPAIGNS))
    pending = list(population.events)
    at = population.start
    with progress_bar(progress) as bar:
        task = bar.add_task("demo", total=len(pending), day="")
        while at < population.end + timedelta(hours=3) or emulation.delays.pending:  # throttled sends waiting
            at += STEP
            batch = []
            while pending and pending[0]["at"] <= at:
                batch.append(pending.pop(0))
            _publish(emulation, batch)
            shoppers.engage(until=at)  # shoppers: opens and clicks due by now go out as SES events
            emulation.drain(close_windows=False)  # the tally's batches close on the clock, as Lambda's would
            emulation.advance(at, close_windows=False)
            observed = recorder.observe(at)
            sent.extend(observed)
            shoppers.respond(observed, pending)  # shoppers: extra orders join the events still to publish
            total = len(population.events) + len(shoppers.orders)
            bar.update(task, total=total, advance=len(batch), day=at.strftime("%a %d %b %H:%M"))
    emulation.drain()  # the last stream batches: their windows pass with nothing more written
    shoppers.horizon = at
    return sent, shoppers


def progress_bar(enabled: bool) -> Progress:
    """The demo's progress, drawn on the standard output it starts with, and nowhere else.

    While a function runs, the emulation points ``sys.stdout`` at the function's log file. A rich console left to
    follow ``sys.stdout`` redraws from its own thread into whichever file that is at the moment, so the bar's text
    would land inside log lines, EMF metrics among them, which the summary parses as JSON. Bound to its terminal,
    and leaving ``sys.stdout`` and ``sys.stderr`` alone, it cannot.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("simulated {task.fields[day]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        console=Console(file=sys.stdout),
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not enabled,
    )


def _publish(emulation: Emulation, batch: list[dict[str, Any]]) -> None:
    """Put the events on the bus, ten per request, draining the queues every 200 events."""
    events, bus = emulation.client("events"), emulation.output("BusName")
    for start in range(0, len(batch), 10):
        entries = [
            {
                "EventBusName": bus,
                "Source": e["Source"],
                "DetailType": e["DetailType"],
                "Detail": json.dumps(e["Detail"]),
                "Time": e["at"],
            }
            for e in batch[start : start + 10]
        ]
        result = events.put_events(Entries=entries)
        if result["FailedEntryCount"]:
            raise RuntimeError(f"the bus refused events: {result['Entries']}")
        if start % 200 == 190:  # moto's SQS scans a whole queue per receive: keep queues shallow
            emulation.drain(close_windows=False)


@dataclass
class Shoppers:
    """Shoppers responding to the messages that reached them (``simulator.ResponseModel``): their opens and clicks
    go out as SES events when their time comes, their extra orders join the events still to publish."""

    emulation: Emulation
    model: ResponseModel
    campaigns: list[Campaign]
    """The campaigns the stack runs (bundled from ``campaigns/``)."""
    answered: dict[str, Exposure] = field(default_factory=dict)
    """Decision id -> the message that reached the shopper (one response per decision, fallbacks included)."""
    engagements: list[tuple[datetime, str, Literal["Open", "Click"], str]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    horizon: datetime | None = None

    def respond(self, sent: list[Sent], pending: list[dict[str, Any]]) -> None:
        """Draw the responses to newly sent messages, adding their extra orders to ``pending`` at their time."""
        for s in sent:
            if s.decision_id is None or s.decision_id in self.answered or not reaches(s.channel, s.address):
                continue  # a bounce: its fallback, if any, is the message that reaches them
            record = self.store.decision(s.decision_id)
            decision = record.decision if record else None
            if decision is None or decision.campaign_id is None or not decision.profile_key.startswith("c:"):
                continue
            exposure = Exposure.of(decision, s.channel, s.address, decision.profile_key[2:])
            self.answered[s.decision_id] = exposure
            response = self.model.respond(exposure)
            link = next((m.group(0) for m in (URL.search(x.text) for x in decision.messages.values()) if m), "")
            if response.opened_at is not None:
                heapq.heappush(self.engagements, (response.opened_at, s.decision_id, "Open", ""))
            if response.clicked_at is not None:
                heapq.heappush(self.engagements, (response.clicked_at, s.decision_id, "Click", link))
            if response.order is not None:
                bisect.insort(pending, response.order, key=lambda e: e["at"])
                self.orders.append(response.order)

    @functools.cached_property
    def store(self) -> Store:
        return Store(self.emulation.output("TableName"), client=self.emulation.client("dynamodb"))

    def published(self) -> list[dict[str, Any]]:
        """The extra orders the demo published (those due after its last round never were)."""
        return [o for o in self.orders if self.horizon is not None and o["at"] <= self.horizon]

    def engage(self, until: datetime) -> None:
        while self.engagements and self.engagements[0][0] <= until:
            at, decision_id, kind, link = heapq.heappop(self.engagements)
            self.emulation.publish_engagement(decision_id, kind, at, link)

    def summary(self, decisions: list[dict[str, Any]], population: Population) -> dict[str, Any]:
        """Opens, clicks and extra orders; per campaign, its true purchase probability per variant and its effect on
        this run's recipients (``sample_truth``). Who placed which order is read from the simulator (a session's
        orders are the customer's once they logged in), which is where the pipeline's identity resolution arrives."""
        counts = self.emulation.ses_event_counts
        figures: dict[str, Any] = {
            "email_opens": counts.get("Open", 0),
            "email_clicks": counts.get("Click", 0),
            "response_orders": len(self.published()),
        }
        horizon = (self.horizon or population.end) + timedelta(microseconds=1)
        truth = sample_truth(
            self._exposures(decisions, population),
            self.placed_orders(population),
            self.model,
            horizon,
            WINDOW,
            {c.id: follow_up_span(c) for c in self.campaigns},
        )
        figures["true_effects"] = {
            campaign: {
                "purchase_probability": {v: e.purchase for v, e in variants.items()},
                "sample": {
                    "recipients": truth[campaign].recipients,
                    "conversion": round(truth[campaign].conversion, 4),
                    "revenue_per_recipient": round(truth[campaign].revenue_per_recipient, 2),
                    "conversion_without": round(truth[campaign].conversion_without, 4),
                }
                if campaign in truth
                else None,
            }
            for campaign, variants in sorted(self.model.effects.items())
        }
        return figures

    def _exposures(self, decisions: list[dict[str, Any]], population: Population) -> list[Exposure]:
        """Every send and holdout decision, with where its message went (or, held out, would have gone)."""
        addresses = contacts(population)
        channels = {c.id: c.channels for c in self.campaigns}
        exposures = []
        for doc in decisions:
            if doc["action"] not in ("send", "holdout") or not doc["profile_key"].startswith("c:"):
                continue
            decision = Decision.model_validate(doc)
            found = self.answered.get(decision.decision_id)
            if found is not None:
                exposures.append(found)
                continue
            channel, address = decision.channel or "email", None
            if decision.action == "holdout":
                email_address, phone = addresses.get(decision.profile_key[2:], (None, None))
                address = email_address if channel == "email" else phone
                bounces = channel == "email" and mailbox_scenario(address) in ("bounce", "suppressionlist")
                texts = "sms" in channels.get(decision.campaign_id or "", []) and phone is not None
                if bounces and texts and population.truth.allowed("sms", phone or "", decision.decided_at):
                    channel, address = "sms", phone  # the bounce would have fallen back to a text
            exposures.append(Exposure.of(decision, channel, address, decision.profile_key[2:]))
        return exposures

    def placed_orders(self, population: Population) -> dict[str, list[PlacedOrder]]:
        """Each customer's orders: those they place anyway, and the extra orders the demo published."""
        orders = shoppers_orders(population)
        for o in self.published():
            detail = o["Detail"]
            orders.setdefault(detail["customer_id"], []).append(
                PlacedOrder(detail["order_id"], o["at"], Decimal(detail["total"]), o["response_to"])
            )
        return orders


class Recorder:
    """What moto recorded as sent since the last look, stamped with the emulated time it was sent at (the time of
    the invocation that sent it; ``at``, the time of the look, for one sent outside any)."""

    def __init__(self, emulation: Emulation) -> None:
        self.emulation = emulation
        self.emails = self.sms = 0

    def observe(self, at: datetime) -> list[Sent]:
        found: list[Sent] = []
        emails = self.emulation.sent_emails()
        stamps = self.emulation.sent_at
        for n, message in enumerate(emails[self.emails :], start=self.emails):
            mail = email.message_from_string(message.raw_data)
            header = mail.get("X-SES-MESSAGE-TAGS") or ""
            tags = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
            when = stamps["email"][n] if n < len(stamps["email"]) else at
            found.extend(Sent("email", a, tags.get("decision_id"), when) for a in recipients(message))
        sms = self.emulation.sent_sms()
        for n, (_mid, phone, text) in enumerate(sms[self.sms :], start=self.sms):
            match = LINK.search(text)
            when = stamps["sms"][n] if n < len(stamps["sms"]) else at
            found.append(Sent("sms", phone, match.group(1) if match else None, when))
        self.emails, self.sms = len(emails), len(sms)
        return found


def _summarize(
    emulation: Emulation, population: Population, sent: list[Sent], out: Path, shoppers: Shoppers
) -> dict[str, Any]:
    found = TableScan.of(emulation.client("dynamodb"), emulation.output("TableName"))
    dead_letters = _dead_letters(emulation)
    measured = _save(emulation, found, shoppers.campaigns, out)
    emulation.flush_logs()
    metrics = emf_totals(emulation.logs)
    ingest_dlqs = sum(n for lid, n in dead_letters.items() if lid.startswith("Ingest"))
    return (
        {
            "events_published": len(population.events) + len(shoppers.published()),
            "events_ingested": int(metrics.get("EventsIngested", 0)),
            "events_rejected": ingest_dlqs,
            "rejected_by_reason": _rejections(emulation),
            "profiles": found.profiles,
            "identity_merges": int(metrics.get("IdentityMerges", 0)),
            "decisions": len(found.decisions),
            "decisions_by_action": dict(sorted(Counter(d["action"] for d in found.decisions).items())),
            "messages_by_campaign": dict(sorted(found.messages_by_campaign().items())),
        }
        | _sends(emulation, population, sent, found.rerouted)
        | {
            "dlq_messages": sum(dead_letters.values()),
            "customers": population.customers,
            "simulated_days": (population.end - population.start).days,
            "example_customer": found.example_customer(),
            "holdout_floor_percent": float(emulation.environment("decide").get("HOLDOUT_FLOOR_PERCENT") or 0),
        }
        | shoppers.summary(found.decisions, population)
        | measured
    )


@dataclass
class TableScan:
    """What the table holds once the demo is over."""

    profiles: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """Every decision record, in the order the scan met them."""
    rerouted: set[str] = field(default_factory=set)
    """Ids of the decisions a fallback re-routed to another channel."""
    revenue: dict[str, float] = field(default_factory=dict)
    """Decision id -> the revenue attributed to it, from the profiles' message logs."""
    links: dict[str, str] = field(default_factory=dict)
    """Identity links: every other identifier of a person (e-mail, phone, cookie) -> the key it redirects to."""

    @classmethod
    def of(cls, ddb: Any, table: str) -> TableScan:
        found = cls()
        for kind, key, value in scan.items(ddb, table):
            if kind == "profile":
                found.profiles += 1
                for message in value.get("messages", []):
                    found.revenue[message["decision_id"]] = float(message.get("revenue", 0))
            elif kind == "link":
                found.links[key] = value
            else:
                found.decisions.append(value)
                if value.get("fallback_of"):
                    found.rerouted.add(str(value["fallback_of"]))
        return found

    def identities(self) -> dict[str, str]:
        """Every linked identifier -> the profile it leads to now (a redirect may lead to a profile merged since)."""
        return {key: scan.follow(self.links, target) for key, target in sorted(self.links.items())}

    def example_customer(self) -> str | None:
        """A customer to ``explain``: the first (by id) sent a cart reminder, else the first sent anything."""
        sent = sorted(
            (d["campaign_id"] != "cart-abandonment", d["profile_key"]) for d in self.decisions if d["action"] == "send"
        )
        return next((key[2:] for _, key in sent if key.startswith("c:")), None)

    def messages_by_campaign(self) -> Counter[str]:
        """Sends and holdouts per campaign (``<campaign>:send``, ``<campaign>:holdout``)."""
        chosen = (d for d in self.decisions if d["action"] in ("send", "holdout"))
        return Counter(f"{d['campaign_id']}:{d['action']}" for d in chosen)


def _sends(emulation: Emulation, population: Population, sent: list[Sent], rerouted: set[str]) -> dict[str, int]:
    """What moto recorded as sent, and the violations among it (``audit.sends``)."""
    return {
        "emails_sent": sum(1 for s in sent if s.channel == "email"),
        "sms_sent": sum(1 for s in sent if s.channel == "sms"),
        "email_bounces": emulation.ses_event_counts.get("Bounce", 0),
        "email_complaints": emulation.ses_event_counts.get("Complaint", 0),
        "sms_fallbacks": sum(1 for s in sent if s.channel == "sms" and s.decision_id in rerouted),
    } | audit.sends(sent, population.truth, load_policy(CAMPAIGNS))


def _dead_letters(emulation: Emulation) -> dict[str, int]:
    """Messages in each dead-letter queue, by the queue's logical id."""
    sqs = emulation.client("sqs")
    found: dict[str, int] = {}
    for logical_id, url in emulation.physical.items():
        if "DeadLetters" in logical_id:
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            found[logical_id] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    return found


def _rejections(emulation: Emulation) -> dict[str, int]:
    """Messages in ingest's dead-letter queues by their ``reason``, read and made visible again at once."""
    sqs = emulation.client("sqs")
    reasons: Counter[str] = Counter()
    for logical_id, url in emulation.physical.items():
        if not (logical_id.startswith("Ingest") and "DeadLetters" in logical_id):
            continue
        seen = []
        while messages := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["reason"]
        ).get("Messages"):
            for message in messages:
                reasons[message.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "none")] += 1
                seen.append(message["ReceiptHandle"])
        for start in range(0, len(seen), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for n, handle in enumerate(seen[start : start + 10])
            ]
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return dict(reasons.most_common())


def _save(emulation: Emulation, found: TableScan, campaigns: list[Campaign], out: Path) -> dict[str, Any]:
    """The files the other commands read: the decision log and its identity links (``nextbest explain``), the
    randomised decisions with their rewards (``nextbest evaluate-policy --log``), the counters and the report drawn
    from them (``nextbest report``); returns what the report shows of each campaign's conversion uplift."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "decisions.jsonl").open("w") as log_file:
        by_time = sorted(found.decisions, key=lambda d: d["decided_at"])
        log_file.writelines(json.dumps(d, sort_keys=True) + "\n" for d in by_time)
    (out / "identities.json").write_text(json.dumps(found.identities(), indent=0) + "\n")
    variants = {c.id: [v.id for v in c.variants] for c in campaigns}
    logged = (ope.from_decision(d, variants, found.revenue.get(d["decision_id"], 0.0)) for d in found.decisions)
    with (out / "logged.jsonl").open("w") as ope_log:
        ope_log.writelines(record.model_dump_json() + "\n" for record in logged if record is not None)
    ddb, table = emulation.client("dynamodb"), emulation.output("TableName")
    counters = report.counter_items(table, [c.id for c in campaigns], client=ddb)
    (out / "counters.json").write_text(json.dumps(counters, indent=1) + "\n")
    report.write(out / "report.html", campaigns, counters, "the local demo", clock.now())
    measured: dict[str, Any] = {}
    for stats in report.collect(campaigns, counters):
        found_uplift = stats.uplift.conversion.absolute
        measured[stats.campaign.id] = (
            {"estimate": found_uplift.estimate, "lower": found_uplift.lower, "upper": found_uplift.upper}
            if found_uplift is not None
            else {"waiting_for": stats.waiting_for()}
        )
    return {"measured_uplift": measured}


def emf_totals(logs: Path) -> Counter[str]:
    """Sum the EMF metrics the functions printed, as CloudWatch would aggregate them."""
    totals: Counter[str] = Counter()
    for path in logs.glob("*.log"):
        for line in path.read_text().splitlines():
            if '"_aws"' not in line:
                continue
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = record.get(metric["Name"], 0)
                    totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return totals
