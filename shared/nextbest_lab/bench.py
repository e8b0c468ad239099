"""``make bench``: what each function costs (cold-start imports, CPU, AWS requests per record, capacity units and
dollars per event) and whether the statistics cover the truth, measured here, printed and saved.

Each figure is measured, never assumed: import times in a fresh interpreter, AWS requests and DynamoDB capacity
units counted by botocore hooks while each function runs on the emulation (``nextbest_lab.capacity``), CPU of the
pure domain code with the clock of ``time.process_time``. Dollars are those measured counts at the prices of
``docs/prices.toml``. Results go to ``.nextbest/bench/results.json`` (one flat object).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nextbest.core.campaigns import Campaign
    from nextbest.core.profiles import Profile

    from infra.local.emulator import Emulation

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".nextbest" / "bench"


def import_seconds(
    cdk_out: Path, step: str, repeat: int = 5, layers: bool = False, name: str | None = None
) -> dict[str, Any]:
    """Median import time of a function's handler in a fresh interpreter, and whether numpy came along.

    With ``layers``, paths under ``/opt`` in its environment point at its layers' assets as the emulation
    does (decide then loads and verifies the model set: that is its whole cold init).
    """
    template = json.loads((cdk_out / "nextbest.template.json").read_text())
    [function] = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == step
    ]
    env = {
        k: v if isinstance(v, str) else "placeholder"
        for k, v in function["Properties"]["Environment"]["Variables"].items()
    }
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "PATH": os.environ.get("PATH", "")}
    if layers:
        for key, value in env.items():
            for ref in function["Properties"].get("Layers", []) if value.startswith("/opt/") else []:
                found = cdk_out / template["Resources"][ref["Ref"]]["Metadata"]["aws:asset:path"] / value[5:]
                env[key] = str(found) if found.exists() else env[key]
    asset = cdk_out / function["Metadata"]["aws:asset:path"]
    code = (
        "import sys, time; t = time.perf_counter(); import handler; "
        "print(time.perf_counter() - t, 'numpy' in sys.modules)"
    )
    times, numpy = [], False
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=asset,
            env={**env, "PYTHONPATH": str(ROOT / "shared")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        times.append(float(out[0]))
        numpy = numpy or out[1] == "True"
    if name:
        return {name: round(statistics.median(times), 3)}
    return {f"{step}_import_s": round(statistics.median(times), 3), f"{step}_imports_numpy": numpy}


def scoring_ms(profiles: int = 1000, repeat: int = 200, seed: int = 7) -> dict[str, Any]:
    """Wall time of scoring one profile (median of ``repeat``) and ``profiles`` at once (median of 5),
    with the committed model set, on profiles with 0 to 12 orders and a few product affinities."""
    from decimal import Decimal

    from nextbest.core.profiles import Order, Profile
    from nextbest.decide.scoring import Models

    from nextbest_lab.simulator import CATALOGUE

    rng = random.Random(seed)
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    people = []
    for n in range(profiles):
        times = sorted(now - timedelta(days=rng.uniform(0, 400)) for _ in range(rng.choice([0, 1, 1, 2, 3, 5, 12])))
        orders = [Order(order_id=f"o{i}", at=t, total=Decimal("25.00")) for i, t in enumerate(times)]
        people.append(
            Profile(
                key=f"c:{n}",
                orders=orders,
                order_count=len(orders),
                revenue=Decimal(25 * len(orders)),
                first_order_at=times[0] if times else None,
                last_order_at=times[-1] if times else None,
                products={rng.choice(CATALOGUE)[0]: rng.uniform(1, 1e3) for _ in range(rng.randint(0, 4))},
            )
        )
    models = Models.load(ROOT / "models")
    one = []
    for i in range(repeat):
        started = time.perf_counter()
        models.score(people[i % len(people)], now)
        one.append(time.perf_counter() - started)
    many = []
    for _ in range(5):
        started = time.perf_counter()
        models.score_many(people, now)
        many.append(time.perf_counter() - started)
    return {
        "score_one_ms": round(statistics.median(one) * 1e3, 3),
        f"score_{profiles}_ms": round(statistics.median(many) * 1e3, 2),
    }


def domain_cpu(customers: int, seed: int) -> dict[str, Any]:
    """CPU per event of validation + identity resolution + profile update, with an in-memory store."""
    from nextbest.core.events import ProductUpdated, RejectedEvent, parse_event
    from nextbest.core.profiles import TriggerDelays
    from nextbest.ingest.service import ingest, update_product
    from nextbest.memory import MemoryStore

    from nextbest_lab.simulator import simulate

    population = simulate(customers=customers, seed=seed)
    bodies = [
        json.dumps(
            {
                "id": "x",
                "detail-type": e["DetailType"],
                "source": e["Source"],
                "time": e["at"].isoformat(),
                "detail": e["Detail"],
            }
        )
        for e in population.events
    ]
    store, delays = MemoryStore(), TriggerDelays({"cart_abandoned": timedelta(hours=1)})
    now = population.end
    started = time.process_time()
    for body in bodies:
        try:
            kind, detail = parse_event(body, now)
        except RejectedEvent:
            continue
        if isinstance(detail, ProductUpdated):
            update_product(store, detail)
        else:
            ingest(store, kind, detail, delays)
    elapsed = time.process_time() - started
    return {"ingest_cpu_us_per_event": round(elapsed / len(bodies) * 1e6, 1)}


def decide_cpu(customers: int = 1000, campaigns: int = 50, seed: int = 7) -> dict[str, Any]:
    """CPU of scoring + arbitration for one customer whose cart was left, against ``campaigns`` competing
    cart campaigns (two Thompson-sampled variants each, observed counts), excluding I/O."""
    from nextbest.core.campaigns import load_policy
    from nextbest.decide.engine import decide
    from nextbest.decide.scoring import Models

    rng = random.Random(seed)
    rivals, counts = _rival_carts(rng, campaigns)
    policy, models = load_policy(ROOT / "campaigns"), Models.load(ROOT / "models")
    now = datetime(2026, 11, 2, 15, tzinfo=UTC)
    people = _cart_leavers(rng, customers, now)
    due = now - timedelta(hours=1)

    def one(profile: Profile) -> None:
        scores = models.score(profile, now)
        decide(profile, "cart_abandoned", due, rivals, policy, now, "https://shop.example", scores,
               lambda c: counts[c.id])  # fmt: skip

    for profile in people[:50]:  # warm the allocation cache, as a container does on its first records
        one(profile)
    cpu = []
    for profile in people:
        started = time.process_time_ns()
        one(profile)
        cpu.append((time.process_time_ns() - started) / 1e6)
    cpu.sort()
    return {
        "decide_campaigns": campaigns,
        "decide_cpu_ms_p50": round(cpu[len(cpu) // 2], 3),
        "decide_cpu_ms_p99": round(cpu[int(len(cpu) * 0.99) - 1], 3),
    }


def _rival_carts(rng: random.Random, campaigns: int) -> tuple[list[Campaign], dict[str, dict[str, tuple[int, int]]]]:
    """``campaigns`` copies of the cart campaign with their own priority and margin, and each variant's
    (sends, conversions)."""
    from decimal import Decimal

    from nextbest.core.campaigns import load_campaigns

    cart = next(c for c in load_campaigns(ROOT / "campaigns") if c.id == "cart-abandonment")
    rivals = [
        cart.model_copy(update={"id": f"cart-{i:02d}", "priority": rng.randint(0, 20),
                                "margin_rate": Decimal(str(round(rng.uniform(0.2, 0.6), 2)))})
        for i in range(campaigns)
    ]  # fmt: skip
    counts = {c.id: {v.id: (rng.randint(100, 900), rng.randint(0, 60)) for v in c.variants} for c in rivals}
    return rivals, counts


def _cart_leavers(rng: random.Random, customers: int, now: datetime) -> list[Profile]:
    """Customers who consented to e-mail and left a cart two hours ago, with 0 to 4 earlier orders."""
    from decimal import Decimal

    from nextbest.core.events import LineItem
    from nextbest.core.profiles import Cart, Consent, Order, Profile

    people = []
    for i in range(customers):
        at = now - timedelta(hours=2)
        orders = [
            Order(order_id=f"o{i}-{k}", at=now - timedelta(days=40 * (k + 1)), total=Decimal(50))
            for k in range(rng.randint(0, 4))
        ]
        people.append(
            Profile(
                key=f"c:b{i}", identifiers=[f"c:b{i}"], email="x@example.org", time_zone="America/New_York",
                consent={"email": Consent(granted=True, at=at, source="bench")},
                cart=Cart(items=[LineItem(product_id="sku-001", name="Serum", quantity=1, unit_price=Decimal("32"))],
                          updated_at=at),
                orders=orders, order_count=len(orders), revenue=Decimal(50 * len(orders)),
                first_order_at=orders[-1].at if orders else None, last_order_at=orders[0].at if orders else None,
            )
        )  # fmt: skip
    return people


def pipeline_requests(cdk_out: Path, customers: int, seed: int) -> dict[str, Any]:
    """AWS requests per record for each function over a demo stream, counted as they are made; and from the same
    run, issue 14's figures (``nextbest_lab.capacity``: capacity units, calls, the hottest shared item, the sweep's
    rate, the item classes and the cost per million events, priced from ``docs/prices.toml``)."""
    from nextbest_lab import capacity, demo
    from nextbest_lab.cost import Prices

    out = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    figures: dict[str, Any] = {}
    snapshots: list[capacity.Snapshot] = []

    def inspect(emulation: Emulation) -> None:
        figures.update(requests_per_record(emulation))
        capacity.click_unsubscribe_links(emulation)  # after counting: the demo's shoppers never unsubscribe
        snapshots.append(capacity.Snapshot.of(emulation))

    summary = demo.run(
        customers=customers, seed=seed, out=out, progress=False, cdk_out=cdk_out, inspect=inspect, metered=True
    )
    figures["bench_events"] = summary["events_published"]
    figures["ddb_requests_per_event"] = figures["ingest_ddb_requests_per_record"]
    return figures | capacity.figures(snapshots[0], summary["events_published"], Prices.load())


def requests_per_record(emulation: Emulation) -> dict[str, Any]:
    """Records each function handled, and the DynamoDB and AWS requests it made per record."""
    figures: dict[str, Any] = {}
    for function in emulation.functions.values():
        ddb = sum(n for call, n in function.aws_calls.items() if call.startswith("dynamodb."))
        figures[f"{function.name}_records"] = function.records
        figures[f"{function.name}_ddb_requests_per_record"] = round(ddb / max(function.records, 1), 3)
        figures[f"{function.name}_aws_requests_per_record"] = round(
            sum(function.aws_calls.values()) / max(function.records, 1), 3
        )
    return figures


def simulator_coverage(runs: int = 40, customers: int = 1000, holdout_percent: float = 50.0) -> dict[str, Any]:
    """Coverage of the uplift report's 95% intervals on the shop simulator, against each run's known true effect
    (``nextbest_lab.experiment``): over every (run, campaign, metric) the report had enough data for; the fixed-n
    interval and the cart reminder's mean error (in points, and in its standard errors) are the sensitive checks."""
    from nextbest_lab.experiment import coverage_on_simulator

    result = coverage_on_simulator(runs, customers, holdout_percent=holdout_percent)
    cart = result["bias_by_campaign"].get("cart-abandonment", {}).get("conversion", {})
    return {
        "uplift_coverage_simulator": result["coverage"],
        "uplift_coverage_simulator_conversion": result["by_metric"]["conversion"],
        "uplift_coverage_simulator_revenue": result["by_metric"]["revenue_per_recipient"],
        "uplift_coverage_simulator_every_look": result["coverage_at_every_look"],
        "uplift_coverage_simulator_fixed_n": result["coverage_fixed_n"],
        "uplift_coverage_simulator_cells": result["cells_reported"],
        "uplift_coverage_simulator_runs": runs,
        "uplift_coverage_simulator_shoppers": customers,
        "uplift_coverage_simulator_holdout_percent": holdout_percent,
        "uplift_coverage_simulator_s": result["elapsed_s"],
        "uplift_simulator_cart_conversion_bias": cart.get("mean_error"),
        "uplift_simulator_cart_conversion_bias_t": cart.get("t"),
    }


def measurement() -> dict[str, Any]:
    """Does the statistics do what it claims? Time-uniform coverage of the uplift confidence sequence on simulated
    experiments with a known effect (60 daily looks each; the fixed-n interval read the same way, for contrast), the
    same on the shop simulator (:func:`simulator_coverage`), and the offline estimators' relative errors on the Open
    Bandit Dataset (each policy's value from the other's log)."""
    from nextbest_lab import ope_validation
    from nextbest_lab.uplift import coverage

    figures: dict[str, Any] = {
        "uplift_ci_coverage": coverage(500, metric="both"),
        "uplift_ci_coverage_conversion": coverage(500, metric="conversion"),
        "uplift_ci_coverage_revenue": coverage(500, metric="revenue_per_recipient"),
        "uplift_ci_coverage_fixed_n": coverage(500, metric="both", method="fixed"),
    }
    return figures | simulator_coverage() | ope_validation.figures(ope_validation.validate())


def learned_policy(decisions: int = 20_000, seed: int = 7) -> dict[str, Any]:
    """Issue 16's figure: the true incremental revenue per decision (over sending nothing) of the policy learned from
    one randomised log of :func:`~nextbest_lab.simulator.policy_world`, of today's ranking by propensity x value and
    of the best single message for everyone, each on a second log of the same shop, with its DR estimate from
    that log and 95% interval beside it; and what the gate did with the learned policy (held-out: the second log)."""
    import numpy as np

    from nextbest_lab import policy, simulator
    from nextbest_lab.policies import highest_expected_value

    train, test = simulator.policy_world(decisions, seed), simulator.policy_world(decisions, seed + 1)
    started = time.process_time()
    learned = policy.learn(train.records)
    learn_s = time.process_time() - started
    evidence = policy.evidence_on(test.records, learned)
    log, gamma = evidence.log, evidence.gamma
    singles = {a: evidence.policies[f"{a} to everyone"] for a in log.actions if a != "none"}
    best = max(singles, key=lambda a: test.true_value(singles[a], log.actions))
    ranking = np.array([[highest_expected_value(r).get(a, 0.0) for a in log.actions] for r in test.records])
    compared = {
        "learned": evidence.policies["learned policy"],
        "current_ranking": ranking,
        "best_single": singles[best],
    }
    out: dict[str, Any] = {"policy_learned_kind": learned.member.kind, "policy_best_single_action": best}
    for name, probs in compared.items():
        dr = policy.paired((probs * gamma).sum(axis=1), gamma[:, log.none])
        key = f"policy_true_incremental_revenue_per_decision_{name}"
        out[key] = round(test.true_value(probs, log.actions), 3)
        out[f"{key}_dr"] = round(dr[0], 3)
        out[f"{key}_dr_interval"] = [round(dr[1], 3), round(dr[2], 3)]
    with tempfile.TemporaryDirectory() as folder:
        gate = policy.learn_and_gate(train.records, Path(folder), holdout=test.records).manifest["gate"]
    return out | {"policy_gate_promoted": gate["promoted"], "policy_learn_cpu_s": round(learn_s, 1)}


def import_rate(cdk_out: Path, customers: int = 100_000, seed: int = 7) -> dict[str, Any]:
    """``nextbest import`` of ``customers`` customers (each with a consent and two orders of one or two items) into
    the emulated table: its rate here, and the DynamoDB requests and writes it made per customer. moto serves one
    request at a time in this process (a few milliseconds each), so on AWS the rate is set by the import's workers,
    each waiting on DynamoDB's latency, and by the table's write quota: the requests per customer are what carries
    over."""
    import csv

    from moto import mock_aws
    from nextbest.core import clock

    from infra.local.emulator import Emulation
    from nextbest_lab.importing import import_files

    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="nextbest-import-"))
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    with (
        (folder / "customers.csv").open("w", newline="") as c,
        (folder / "consents.csv").open("w", newline="") as k,
        (folder / "orders.csv").open("w", newline="") as o,
    ):
        customers_csv, consents_csv, orders_csv = csv.writer(c), csv.writer(k), csv.writer(o)
        customers_csv.writerow(["customer_id", "email", "first_name", "time_zone", "signed_up_at"])
        consents_csv.writerow(["customer_id", "channel", "granted", "at"])
        orders_csv.writerow(["order_id", "customer_id", "at", "product_id", "name", "quantity", "unit_price"])
        for n in range(customers):
            joined = start - timedelta(days=rng.uniform(30, 900))
            customers_csv.writerow([f"imp_{n}", f"shopper{n}@example.org", f"Shopper{n}", "Europe/Paris", joined])
            consents_csv.writerow([f"imp_{n}", "email", rng.random() < 0.8, joined])
            for k_order in range(2):
                at = joined + timedelta(days=rng.uniform(1, 25))
                for item in range(1 + (rng.random() < 0.3)):
                    orders_csv.writerow([f"o{n}-{k_order}", f"imp_{n}", at, f"sku-{item}", "Serum", 1, "25.00"])
    manual = clock.ManualClock(start)
    clock.install(manual)
    try:
        with mock_aws():
            emulation = Emulation(cdk_out, manual, folder / "logs").deploy()
            calls: dict[str, int] = {}

            def count(event_name: str, **_: Any) -> None:
                operation = event_name.rsplit(".", 1)[-1]
                calls[operation] = calls.get(operation, 0) + 1

            from nextbest.aws import clients

            events = clients.client("dynamodb").meta.events  # the client the import's stores share
            events.register("before-call.dynamodb", count)
            table, secret = emulation.output("TableName"), emulation.output("ErasureKey")
            files = {kind: folder / f"{kind}.csv" for kind in ("customers", "consents", "orders")}
            with _cpu_outside_moto() as cpu:
                done = import_files(table, secret, files, ROOT / "campaigns", folder / "state")
            events.unregister("before-call.dynamodb", count)
    finally:
        clock.reset()
    if done.rejected:
        raise RuntimeError(f"the import refused rows: {done.report}")
    writes = sum(n for op, n in calls.items() if op in ("PutItem", "UpdateItem", "TransactWriteItems", "DeleteItem"))
    return {
        "import_customers": customers,
        "import_customers_per_s_emulated": round(done.rate, 1),
        "import_ddb_requests_per_customer": round(sum(calls.values()) / customers, 3),
        "import_ddb_writes_per_customer": round(writes / customers, 3),
        "import_client_cpu_ms_per_customer": round(cpu.seconds * 1000 / customers, 2),
        "import_customers_per_s_per_process_aws_derived": round(customers / cpu.seconds),
    }


@dataclass
class _Spent:
    seconds: float = 0.0


@contextlib.contextmanager
def _cpu_outside_moto() -> Iterator[_Spent]:
    """The process's CPU time in the block, less what moto spent answering its requests (each thread's own CPU time
    in moto's handler): what the same work costs a client of AWS, whose answers take no CPU of its own. One
    process's customers a second on AWS cannot exceed one core's worth of it, however many threads wait on DynamoDB
    (they share one interpreter lock)."""
    from moto.core import botocore_stubber

    spent, answering = _Spent(), [0.0]
    lock = threading.Lock()
    handler = botocore_stubber.BotocoreStubber.__call__

    def timed(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return handler(self, event_name, request, **kwargs)
        finally:
            with lock:
                answering[0] += time.thread_time() - start

    botocore_stubber.BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
    started = time.process_time()
    try:
        yield spent
    finally:
        botocore_stubber.BotocoreStubber.__call__ = handler  # type: ignore[method-assign]
        spent.seconds = time.process_time() - started - answering[0]


def catalog_fan_out(interested: int = 500) -> dict[str, Any]:
    """A product back in stock for ``interested`` customers who viewed it while it was sold out, on the emulated stack
    with the back-in-stock example of ``docs/campaigns`` approved: what the change cost, per interested customer,
    from the ``product.updated`` to the decision (ingest: the catalog write, the fan-out's pages and each customer's
    event; the requests on its queue; decide's poll and decision), priced like the pipeline's figures. The customers
    and their views are put on the bus first and not counted."""
    from moto import mock_aws
    from nextbest.core import clock
    from nextbest.core.campaigns import Campaign, read_toml

    from infra.local import synthesize
    from infra.local.emulator import Emulation
    from nextbest_lab.demo import _publish

    folder = Path(tempfile.mkdtemp(prefix="nextbest-fan-out-"))
    (folder / "campaigns").mkdir()
    (folder / "campaigns" / "policy.toml").write_text((ROOT / "campaigns" / "policy.toml").read_text())
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    example = ROOT / "docs" / "campaigns" / "back-in-stock.toml"
    digest = Campaign.model_validate(read_toml(example)).digest()
    approval = f'status = "approved"\napproved_by = "marketing-lead"\napproved_at = {start.date()}\n'
    approved = example.read_text().replace('status = "draft"\n', approval + f'approved_digest = "{digest}"\n')
    (folder / "campaigns" / "back-in-stock.toml").write_text(approved)
    cdk_out = synthesize(folder / "cdk.out", campaigns=folder / "campaigns")
    manual = clock.ManualClock(start)
    clock.install(manual)
    try:
        with mock_aws():
            emulation = Emulation(cdk_out, manual, folder / "logs").deploy()
            _publish(emulation, [_product_state(start, "out_of_stock")])
            _publish(emulation, [e for n in range(interested) for e in _interested_shopper(n, start)])
            emulation.drain()
            back = start + timedelta(hours=1)
            emulation.advance(back)
            before = _fan_out_usage(emulation)
            _publish(emulation, [_product_state(back, "in_stock")])
            emulation.drain()
            emulation.advance(back + timedelta(minutes=3))
            after = _fan_out_usage(emulation)
            emails = len(emulation.sent_emails())
    finally:
        clock.reset()
    return _fan_out_figures({s: after[s] - before[s] for s in before}, interested, emails)


def _product_state(at: datetime, availability: str) -> dict[str, Any]:
    product = {"product_id": "sku-serum", "name": "Serum", "url": "https://shop.example/p/serum", "price": "32.00"}
    detail = product | {
        "event_id": f"serum-{availability}",
        "occurred_at": at.isoformat(),
        "availability": availability,
    }
    return {"Source": "shop.catalog", "DetailType": "product.updated", "Detail": detail, "at": at}


def _interested_shopper(n: int, at: datetime) -> list[dict[str, Any]]:
    who = {"event_id": f"{n}", "occurred_at": at.isoformat(), "customer_id": f"fan_{n}"}
    events = [
        ("customer.identified", who | {"event_id": f"i{n}", "email": f"fan{n}@example.org"}),
        ("consent.updated", who | {"event_id": f"k{n}", "channel": "email", "granted": True}),
        ("product.viewed", who | {"event_id": f"v{n}", "product_id": "sku-serum"}),
    ]
    return [{"Source": "shop.web", "DetailType": kind, "Detail": detail, "at": at} for kind, detail in events]


def _fan_out_usage(emulation: Emulation) -> dict[str, _Used]:
    """What ingest and decide have used so far: capacity units, invocations, their own seconds, and the billed SQS
    requests on their queues (sent by them or by the event sources and the scheduler)."""
    from nextbest_lab.capacity import SQS_BILLED

    queues: dict[str, set[str]] = {}
    for mapping in emulation.mappings:
        queues.setdefault(mapping.function.name, set()).add(mapping.queue_url.rsplit("/", 1)[-1])
    found: dict[str, _Used] = {}
    for stage in ("ingest", "decide"):
        usage = emulation.metering.usage[stage]
        sqs = sum(n for c, n in emulation.metering.calls.items() if c.service == "sqs" and c.operation in SQS_BILLED
                  and (c.stage == stage or (c.stage is None and c.target in queues.get(stage, set()))))  # fmt: skip
        calls = Counter({(c.service, c.operation): n for c, n in emulation.metering.calls.items() if c.stage == stage})
        [function] = [f for f in emulation.functions.values() if f.name == stage]
        memory = int(emulation.template["Resources"][function.logical_id]["Properties"].get("MemorySize", 128))
        found[stage] = _Used(usage.wru, usage.rru, usage.invocations, usage.own_seconds, sqs, calls, memory)
    return found


@dataclass
class _Used:
    wru: float
    rru: float
    invocations: int
    own_seconds: float
    sqs: int
    calls: Counter[tuple[str, str]]
    memory_mb: int

    def __sub__(self, other: _Used) -> _Used:
        return _Used(self.wru - other.wru, self.rru - other.rru, self.invocations - other.invocations,
                     self.own_seconds - other.own_seconds, self.sqs - other.sqs, self.calls - other.calls,
                     self.memory_mb)  # fmt: skip


def _fan_out_figures(used: dict[str, _Used], interested: int, emails: int) -> dict[str, Any]:
    from nextbest_lab import cost
    from nextbest_lab.cost import Prices, Usage

    prices = Prices.load()
    figures: dict[str, Any] = {"fan_out_interested": interested, "fan_out_emails": emails}
    total = Usage()
    for stage in ("ingest", "decide"):
        u = used[stage]
        seconds = cost.lambda_seconds(u.own_seconds, u.memory_mb, u.calls, prices)
        gb_s = cost.gb_seconds(seconds, u.memory_mb)
        spent = Usage(sqs_requests=u.sqs, lambda_requests=u.invocations, lambda_gb_seconds=gb_s, wru=u.wru, rru=u.rru)
        total += spent
        figures[f"fan_out_{stage}_wru_per_customer"] = round(u.wru / interested, 3)
        figures[f"fan_out_{stage}_rru_per_customer"] = round(u.rru / interested, 3)
        figures[f"fan_out_{stage}_sqs_requests_per_customer"] = round(u.sqs / interested, 3)
    figures["fan_out_cost_per_million_customers_usd"] = round(cost.per_million(total, prices) / interested, 2)
    return figures


def run(customers: int = 500, seed: int = 7, import_customers: int = 100_000) -> dict[str, Any]:
    from infra.local import synthesize

    cdk_out = synthesize(Path(tempfile.mkdtemp(prefix="nextbest-cdk-")))
    results: dict[str, Any] = {}
    for step in ("ingest", "decide", "deliver", "feedback"):
        results |= import_seconds(cdk_out, step)
    results |= import_seconds(cdk_out, "decide", layers=True, name="decide_init_s")
    results |= scoring_ms()
    results |= domain_cpu(customers, seed)
    results |= decide_cpu()
    results |= pipeline_requests(cdk_out, customers, seed)
    results |= measurement()
    results |= learned_policy()
    results |= import_rate(cdk_out, import_customers)
    results |= catalog_fan_out()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results
