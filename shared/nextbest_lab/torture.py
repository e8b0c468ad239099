"""``make torture``: the demo's shop through the whole pipeline with the faults AWS really produces, at several rates.

Each rate runs the demo's driver (``nextbest_lab.demo``) on an emulation with
:class:`~infra.local.emulator.faults.Faults` injected: throttling, cancelled transactions, 5xx errors and
timeouts after the write took effect from DynamoDB; throttling and ambiguous failures after the message went out
from SES and SNS; Scheduler throttling; duplicate, late, concurrent and crashed SQS deliveries, and poison messages.

The outcome is checked against what happened outside nextbest's bookkeeping: the simulator's truth (the events
the shop published, its orders, consent, time zones) and what moto recorded as sent (``nextbest_lab.audit``). The
engine's table is read only to find where each event, order or decision ended up, never to decide what should
have happened.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from nextbest.aws.store import Store
from nextbest.aws.store.table import EventMemory, document, event_digest
from nextbest.core.attribution import attribute
from nextbest.core.campaigns import load_policy
from nextbest.core.counters import FACTS, decided, funnel
from nextbest.core.counters import Counter as CounterUpdate
from nextbest.core.decision import Decision
from nextbest.core.profiles import Profile

from infra.local.emulator import Emulation, Faults
from infra.local.emulator.faults import poison_number, subjects
from nextbest_lab import audit, demo
from nextbest_lab.audit import Sent
from nextbest_lab.simulator import Population

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".nextbest" / "torture"
RATES = (0.0, 0.05, 0.2)
UNFINISHED = ("queued", "sending", "waiting")
"""Decision statuses that say a message is still on its way: at the end of a run, stranded."""
SAMPLES = 50
"""Examples (with the faults each met) kept per finding, for the root-cause analysis."""

ROWS = (
    ("events_published", "events the shop published (with the shoppers' response orders)"),
    ("events_valid", "… of which valid (the simulator's malformed ones must be dead-lettered)"),
    ("faults_injected", "faults injected, every kind"),
    ("retry_quota_empty", "errors botocore did not retry: its retry quota was empty"),
    ("events_lost", "valid events neither applied nor dead-lettered"),
    ("events_dead_lettered", "valid events not applied, only in a dead-letter queue (to replay)"),
    ("events_double_applied", "orders counted more than once in a profile (vs the simulator's)"),
    ("orders_lost", "the simulator's orders missing from the profiles"),
    ("optouts_lost", "opt-outs the simulator made that the profile does not hold"),
    ("duplicate_sends", "same decision and channel delivered twice by moto"),
    ("optout_violations", "sent to an address without consent at that moment"),
    ("quiet_hour_violations", "texts sent in quiet hours, the shopper's local time"),
    ("cap_violations", "messages that reached a shopper beyond a rolling cap"),
    ("stranded_messages", "messages left in a work queue"),
    ("stranded_decisions", "decisions left queued / sending / waiting"),
    ("stranded_decisions_sent", "… of which moto did send"),
    ("dlq_entries", "dead-letter queue entries"),
    ("dlq_without_reason", "… with no reason, but for crashes (redriven after maxReceiveCount)"),
    ("dlq_after_crashes", "… with no reason: the worker crashed on the last delivery (by design)"),
    ("decisions_dead_lettered", "decisions whose request waits in a DLQ with its reason (a replay sends it)"),
    ("poison_unaccounted", "poison messages not dead-lettered with a reason"),
    ("counters_off", "statistics the tally kept that differ from a recount of the decisions and orders"),
    ("ambiguous_sends", "decisions left `unknown` (timed out, maybe sent)"),
    ("ambiguous_sent_twice", "… of which moto delivered more than once"),
    ("elapsed_s", "seconds the run took"),
)
"""The table's rows, in order: (key, what it counts)."""
MUST_BE_ZERO = (
    "events_lost",
    "events_dead_lettered",
    "events_double_applied",
    "orders_lost",
    "optouts_lost",
    "duplicate_sends",
    "optout_violations",
    "quiet_hour_violations",
    "cap_violations",
    "stranded_messages",
    "stranded_decisions",
    "dlq_without_reason",
    "poison_unaccounted",
    "ambiguous_sent_twice",
    "counters_off",
)
"""What nothing lost, nothing sent that shouldn't be, means: zero at every rate."""


def run(
    customers: int = 300,
    days: int = 5,
    rates: Iterable[float] = RATES,
    seed: int = 7,
    out: Path = OUT,
    jobs: int = 1,
    kinds: frozenset[str] | None = None,
    cdk_out: Path | None = None,
) -> dict[str, Any]:
    """Every rate, in ``jobs`` processes at once (each its own moto); results by rate, also written to
    ``out/results.json``. ``kinds``: only these faults (``Faults.kinds``)."""
    from infra.local import synthesize

    started = time.perf_counter()
    cdk_out = cdk_out or synthesize(Path(tempfile.mkdtemp(prefix="nextbest-cdk-")))
    rates = list(rates)
    arguments = [(customers, days, rate, seed, out / f"rate-{rate:g}", cdk_out, kinds) for rate in rates]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            outcomes = list(pool.map(one_rate, *zip(*arguments, strict=True)))
    else:
        outcomes = [one_rate(*a) for a in arguments]
    results = {
        "customers": customers,
        "days": days,
        "seed": seed,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "rates": {f"{rate:g}": outcome for rate, outcome in zip(rates, outcomes, strict=True)},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def one_rate(
    customers: int, days: int, rate: float, seed: int, out: Path, cdk_out: Path, kinds: frozenset[str] | None = None
) -> dict[str, Any]:
    """One run of the demo's shop with faults at ``rate``: the demo's summary and the torture's outcome."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # powertools, at every failure
    faults = Faults(rate=rate, seed=seed, kinds=kinds)
    return demo.run(
        customers=customers,
        seed=seed,
        days=days,
        out=out,
        progress=False,
        cdk_out=cdk_out,
        faults=faults,
        check=lambda finished: outcome(finished, faults),
    )


def outcome(run: demo.Run, faults: Faults) -> dict[str, Any]:
    """What the run did, against the truth: the torture's figures, and samples of each finding."""
    table = TableState.of(run.emulation)
    sent = Counter((s.decision_id, s.channel) for s in run.sent)
    figures: dict[str, Any] = {
        "faults_injected": sum(faults.injected.values()),
        "faults": dict(sorted(faults.injected.items())),
        "retry_sleep_skipped_s": round(faults.retry_sleep_s, 1),
        "retry_quota_empty": faults.retry_quota_empty,
    }
    findings: dict[str, list[dict[str, Any]]] = {}
    dead = DeadLetters.read(run.emulation)
    figures |= _events(run, table, dead, findings)
    figures |= _stranded(run.emulation, table, sent, faults, findings, dead)
    figures |= _dead_letters(dead, faults, findings)
    figures |= _ambiguous(table, sent, faults, findings)
    figures |= _violations(run, table, findings)
    figures |= _counters(run.emulation, table, findings)
    _duplicates(sent, faults, findings)
    figures["findings"] = findings
    return figures


@dataclass
class TableState:
    """Where things ended up in the engine's table (read only to locate them)."""

    statuses: dict[str, str] = field(default_factory=dict)
    """Decision id -> status."""
    moto_key: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """Decision id -> (the decision id its message carries, its channel): a fallback carries its original's."""
    applied: set[bytes] = field(default_factory=set)
    """Digests of the events the profiles remember applying (``nextbest.aws.store.table.EventMemory``), and of
    those with a marker item."""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Profile key -> its document."""
    decisions: list[tuple[Decision, set[str]]] = field(default_factory=list)
    """Every decision, and the facts (``opened_at``…) its record holds."""

    @classmethod
    def of(cls, emulation: Emulation) -> TableState:
        found = cls()
        ddb, name = emulation.client("dynamodb"), emulation.output("TableName")
        for page in ddb.get_paginator("scan").paginate(TableName=name):
            for item in page["Items"]:
                found._add(item)
        return found

    def _add(self, item: dict[str, Any]) -> None:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if sk == "DECISION":
            doc = document(item)
            self.statuses[doc["decision_id"]] = item["status"]["S"]
            self.moto_key[doc["decision_id"]] = (doc.get("fallback_of") or doc["decision_id"], doc.get("channel") or "")
            self.decisions.append((Decision.model_validate(doc), {f for f in FACTS if f in item}))
        elif sk == "PROFILE" and "doc" in item:
            self.profiles[pk] = document(item)
            self.applied.update(EventMemory.of([item]).entries)
        elif sk == "EVENT":
            self.applied.add(event_digest(pk[3:]))
        elif sk == "PRODUCT":  # a product keeps its newest event (the shop's catalog sends one per product)
            self.applied.add(event_digest(json.loads(item["doc"]["S"])["event_id"]))


@dataclass
class DeadLetters:
    """Every message in the dead-letter queues: (queue logical id, reason or None, body)."""

    entries: list[tuple[str, str | None, str]]

    @classmethod
    def read(cls, emulation: Emulation) -> DeadLetters:
        sqs = emulation.client("sqs")
        entries = []
        for logical_id, url in emulation.physical.items():
            if "DeadLetters" not in logical_id:
                continue
            while messages := sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600, MessageAttributeNames=["All"]
            ).get("Messages", []):
                for m in messages:
                    reason = m.get("MessageAttributes", {}).get("reason", {}).get("StringValue")
                    entries.append((logical_id, reason, m["Body"]))
        return cls(entries)

    def event_ids(self) -> set[str]:
        """The event ids the dead-lettered bus events carry."""
        return {found.group(1) for _, _, body in self.entries if (found := re.search(r'"event_id":\s*"([^"]+)"', body))}


def _events(run: demo.Run, table: TableState, dead: DeadLetters, findings: dict[str, Any]) -> dict[str, int]:
    """Events lost (valid, yet neither applied nor dead-lettered), orders lost or counted twice, opt-outs lost."""
    published = [e for e in run.population.events if not e.get("malformed")] + run.shoppers.published()
    valid = {e["Detail"]["event_id"]: e for e in published}
    unapplied = {i for i in valid if event_digest(i) not in table.applied}
    lost = sorted(unapplied - dead.event_ids())
    parked = sorted(unapplied & dead.event_ids())
    findings["events_lost"] = [{"event_id": i, "type": valid[i]["DetailType"]} for i in lost[:SAMPLES]]
    findings["events_dead_lettered"] = [{"event_id": i, "type": valid[i]["DetailType"]} for i in parked[:SAMPLES]]
    orders, doubled = _orders(run, table)
    optouts = _optouts_lost(run.population, table)
    findings["events_double_applied"] = doubled[:SAMPLES]
    findings["optouts_lost"] = optouts[:SAMPLES]
    return {
        "events_valid": len(published),
        "events_lost": len(lost),
        "events_dead_lettered": len(parked),
        "events_double_applied": sum(d["extra_orders"] for d in doubled),
        "orders_lost": orders,
        "optouts_lost": len(optouts),
    }


def _orders(run: demo.Run, table: TableState) -> tuple[int, list[dict[str, Any]]]:
    """Orders the simulator placed that no profile counts, and the customers whose profile counts more."""
    lost, doubled = 0, []
    for customer, orders in run.shoppers.placed_orders(run.population).items():
        profile = table.profiles.get(f"c:{customer}", {})
        counted = int(profile.get("order_count", 0))
        lost += max(len(orders) - counted, 0)
        if counted > len(orders):
            revenue = sum((o.total for o in orders), Decimal(0))
            doubled.append(
                {
                    "customer": customer,
                    "extra_orders": counted - len(orders),
                    "revenue": str(profile.get("revenue", 0)),
                    "true_revenue": str(revenue),
                }
            )
    return lost, doubled


def _optouts_lost(population: Population, table: TableState) -> list[dict[str, str]]:
    """Addresses whose last consent statement in the simulator withdrew it while the profile still grants it."""
    found = []
    for (channel, address), history in population.truth.consent.items():
        granted = sorted(history)[-1][1]
        customer = population.truth.owners.get(address)
        profile = table.profiles.get(f"c:{customer}", {})
        if not granted and profile.get("consent", {}).get(channel, {}).get("granted"):
            found.append({"customer": str(customer), "channel": channel})
    return found


def _stranded(
    emulation: Emulation,
    table: TableState,
    sent: Counter[tuple[str | None, str]],
    faults: Faults,
    findings: dict[str, Any],
    dead: DeadLetters,
) -> dict[str, Any]:
    """Messages left in a work queue, and decisions left on their way (and whether moto sent them anyway). A
    decision whose delivery request or Release waits in a dead-letter queue with its reason is dead-lettered (a
    replay finishes it), not stranded."""
    sqs = emulation.client("sqs")
    left: dict[str, int] = {}
    names = [f"ApproximateNumberOfMessages{state}" for state in ("", "NotVisible", "Delayed")]
    for logical_id, url in emulation.physical.items():
        if url.startswith("https://sqs.") and "DeadLetters" not in logical_id:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if count := sum(int(attributes.get(n, 0)) for n in names):
                left[_queue(logical_id)] = count
    parked = {d for _, reason, body in dead.entries if reason for d in subjects(body)}
    stranded = {d: s for d, s in table.statuses.items() if s in UNFINISHED and d not in parked}
    was_sent = [d for d in stranded if sent.get(table.moto_key[d], 0)]
    findings["stranded_decisions"] = [
        {"decision_id": d, "status": s, "sent": sent.get(table.moto_key[d], 0), "faults": faults.trail.get(d, [])}
        for d, s in sorted(stranded.items())[:SAMPLES]
    ]
    return {
        "stranded_messages": sum(left.values()),
        "stranded_by_queue": left,
        "stranded_decisions": len(stranded),
        "stranded_by_status": dict(Counter(stranded.values())),
        "stranded_decisions_sent": len(was_sent),
        "decisions_dead_lettered": sum(1 for d, s in table.statuses.items() if s in UNFINISHED and d in parked),
    }


def _dead_letters(dead: DeadLetters, faults: Faults, findings: dict[str, Any]) -> dict[str, Any]:
    """DLQ entries by queue and reason; poison messages that did not reach one with a reason."""

    def crashed_last_time(body: str) -> bool:
        """The worker died (an injected crash) on the message's last delivery: no code of ours ran to give a
        reason, so SQS's redrive policy moved it, as it would in AWS. By design, and counted apart."""
        crashed = last = False
        for entry in (f for s in subjects(body) for f in faults.trail.get(s, [])):
            if ":sqs.crash@" in entry:
                crashed = True
            elif entry.endswith(":record_failed"):
                last, crashed = crashed, False
        return last

    unexplained = [(q, r, b) for q, r, b in dead.entries if r is None and not crashed_last_time(b)]
    by_reason = Counter(f"{_queue(queue)}:{reason or '(none)'}" for queue, reason, _ in dead.entries)
    reasoned = {n for _, reason, body in dead.entries if reason and (n := poison_number(body)) is not None}
    findings["dlq_without_reason"] = [
        {"queue": _queue(queue), "body": body[:300], "trail": {s: faults.trail.get(s, []) for s in subjects(body)}}
        for queue, reason, body in unexplained
    ][:SAMPLES]
    return {
        "dlq_entries": len(dead.entries),
        "dlq_by_reason": dict(sorted(by_reason.items())),
        "dlq_without_reason": len(unexplained),
        "dlq_after_crashes": sum(1 for _, r, b in dead.entries if r is None and crashed_last_time(b)),
        "poison_injected": len(faults.poison),
        "poison_unaccounted": len({n for n, _ in faults.poison} - reasoned),
    }


def _queue(logical_id: str) -> str:
    """A queue's name in the template, without CDK's hash and the dead-letter suffix (``IngestEvents``)."""
    return re.sub(r"(DeadLetters)?[0-9A-F]{8}$", "", logical_id)


def _ambiguous(
    table: TableState, sent: Counter[tuple[str | None, str]], faults: Faults, findings: dict[str, Any]
) -> dict[str, Any]:
    """Decisions whose send timed out (``unknown``): how often moto really delivered each."""
    unknown = [d for d, s in table.statuses.items() if s == "unknown"]
    times = Counter(min(sent.get(table.moto_key[d], 0), 2) for d in unknown)
    findings["ambiguous_sends"] = [
        {"decision_id": d, "sent": sent.get(table.moto_key[d], 0), "faults": faults.trail.get(d, [])}
        for d in sorted(unknown)[:SAMPLES]
    ]
    return {
        "ambiguous_sends": len(unknown),
        "ambiguous_by_times_sent": {"0": times[0], "1": times[1], "2+": times[2]},
        "ambiguous_sent_twice": times[2],
    }


def _duplicates(per_message: Counter[tuple[str | None, str]], faults: Faults, findings: dict[str, Any]) -> None:
    """The duplicate sends, with the faults each of their decisions met."""
    twice = [(d, c, n) for (d, c), n in per_message.items() if n > 1 and d is not None]
    findings["duplicate_sends"] = [
        {"decision_id": d, "channel": c, "times": n, "faults": faults.trail.get(d, [])} for d, c, n in twice[:SAMPLES]
    ]
    findings["duplicate_sends_by_fault"] = dict(
        Counter(_cause(faults.trail.get(d, []), c) for d, c, _ in twice).most_common()
    )


def _violations(run: demo.Run, table: TableState, findings: dict[str, Any]) -> dict[str, Any]:
    """Which messages broke quiet hours or a cap, and how each came to be sent (:func:`_how`); a cap broken by a
    decided message counts the duplicate or fallback among the messages it was counted with."""
    policy = load_policy(demo.CAMPAIGNS)
    how = _how(run.sent, table)
    quiet = audit.quiet_hour_violations(run.sent, run.population.truth, policy)
    caps = audit.cap_violations(run.sent, run.population.truth, policy)

    def cap_how(violation: audit.CapViolation) -> str:
        found = how(violation.message)
        earlier = {how(s) for s in violation.counted[:-1]} - {"decided"}
        return f"decided, after a {' and a '.join(sorted(earlier))}" if found == "decided" and earlier else found

    findings["quiet_hour_violations"] = [
        {"decision_id": s.decision_id, "channel": s.channel, "at": s.at.isoformat(), "how": how(s)}
        for s in quiet[:SAMPLES]
    ]
    findings["cap_violations"] = [
        {
            "decision_id": v.message.decision_id,
            "channel": v.message.channel,
            "at": v.message.at.isoformat(),
            "cap": v.cap,
            "how": cap_how(v),
            "counted": [f"{s.at.isoformat()} {s.channel} {s.decision_id} ({how(s)})" for s in v.counted],
        }
        for v in caps[:SAMPLES]
    ]
    return {
        "quiet_hour_violations_by_how": dict(Counter(how(s) for s in quiet)),
        "cap_violations_by_how": dict(Counter(cap_how(v) for v in caps)),
    }


def _how(sent: list[Sent], table: TableState) -> Callable[[Sent], str]:
    """How a message moto recorded came to be sent: ``duplicate`` (its decision and channel went before), the
    ``fallback`` of a bounced e-mail (it carries a decision made for another channel), or ``decided``."""
    order = {id(s): n for n, s in enumerate(sent)}
    first: dict[tuple[str | None, str], int] = {}
    for n, s in enumerate(sent):
        first.setdefault((s.decision_id, s.channel), n)

    def how(message: Sent) -> str:
        if first[(message.decision_id, message.channel)] < order[id(message)]:
            return "duplicate"
        decided = table.moto_key.get(message.decision_id or "", (None, ""))[1]
        return "fallback" if decided and decided != message.channel else "decided"

    return how


def _cause(trail: list[str], channel: str) -> str:
    """The fault most likely behind a duplicate: one after the send reached the provider, else the SQS fault."""
    service = "ses" if channel == "email" else "sns"
    after_send = [t.split(":")[1] for t in trail if t.split(":")[1].startswith(f"{service}.") and "after_send" in t]
    return after_send[0] if after_send else ",".join(sorted({t.split(":")[1] for t in trail})) or "no API fault"


def clean(results: dict[str, Any]) -> bool:
    """Whether every rate kept every guarantee."""
    return all(outcome.get(key, 0) == 0 for outcome in results["rates"].values() for key in MUST_BE_ZERO)


def rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The table: one row per figure (and per dead-letter reason), one column per rate."""
    by_rate = list(results["rates"].values())
    table = [(key, [json.dumps(r.get(key, "")) for r in by_rate]) for key, _ in ROWS]
    reasons = sorted({reason for r in by_rate for reason in r.get("dlq_by_reason", {})})
    table += [(f"dlq {reason}", [str(r["dlq_by_reason"].get(reason, 0)) for r in by_rate]) for reason in reasons]
    return table


def _counters(emulation: Emulation, table: TableState, findings: dict[str, Any]) -> dict[str, int]:
    """The statistics the tally kept, against a recount: from the decision records, the recipients of each arm, the
    decisions, sends, opens, clicks and complaints of each funnel and variant; from the profiles, every order's
    credit (conversions, revenue and its squares per arm, funnel and variant, coupon redemptions), attributed again
    from scratch to the messages each profile logged. The stream reached the tally through crashes, twin workers
    and batches handed again, and orders reached ingest through the same faults; a count off by one is a change
    counted twice or lost."""
    recount: defaultdict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for decision, facts in table.decisions:
        counted = decided(decision) if decision.fallback_of is None else []
        counted += [funnel(decision, stage) for fact, stage in FACTS.items() if fact in facts]
        for c in counted:
            recount[(c.pk, c.sk, c.attribute)] += c.by
    credited = 0
    for doc in table.profiles.values():
        for c in order_credits(Profile.model_validate(doc)):
            credited += 1
            for name, by in ((c.attribute, c.by), *c.also):
                recount[(c.pk, c.sk, name)] += by
    store = Store(emulation.output("TableName"), client=emulation.client("dynamodb"))
    kept: dict[tuple[str, str, str], Decimal] = {}
    for campaign in {pk for pk, _, _ in recount}:
        for sk, numbers in store.counts(campaign.removeprefix("s:")).items():
            kept |= {(campaign, sk, name): Decimal(n) for name, n in numbers.items()}
    off = [
        {"counter": " ".join(key), "kept": str(kept.get(key, 0)), "recount": str(n)}
        for key, n in sorted(recount.items())
        if kept.get(key, 0) != n
    ]
    findings["counters_off"] = off[:SAMPLES]
    return {"counters_off": len(off), "order_credits_recounted": credited}


def order_credits(profile: Profile) -> list[CounterUpdate]:
    """Every credit the orders a profile holds earned, attributed again from scratch: its messages as decide logged
    them (nothing credited yet), its orders all new, by the one attribution ingest applies order by order."""
    fresh = [
        m.model_copy(update={"converted_at": None, "revenue": Decimal(0), "redeemed_at": None})
        for m in profile.messages
    ]
    before = profile.model_copy(update={"orders": [], "messages": fresh})
    return attribute(before, before.model_copy(update={"orders": profile.orders}))[1]
