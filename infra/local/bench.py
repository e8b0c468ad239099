"""``make bench``: the figures the budgets in DESIGN.md §8 are about, measured here, printed and saved.

Each figure is measured, never assumed: import times in a fresh interpreter, AWS requests counted by a
botocore hook while each function runs on the emulation, CPU of the pure domain code with the clock of
``time.process_time``. Results go to ``.nextbest/bench/results.json`` (one flat object).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".nextbest" / "bench"


def import_seconds(cdk_out: Path, step: str, repeat: int = 5) -> dict[str, Any]:
    """Median import time of a function's handler in a fresh interpreter, and whether numpy came along."""
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
    return {f"{step}_import_s": round(statistics.median(times), 3), f"{step}_imports_numpy": numpy}


def domain_cpu(customers: int, seed: int) -> dict[str, Any]:
    """CPU per event of validation + identity resolution + profile update, with an in-memory store."""
    from nextbest.events import RejectedEvent, parse_event
    from nextbest.ingest import ingest

    from infra.local.memory import MemoryStore
    from infra.local.simulator import simulate

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
    store, delays = MemoryStore(), {"cart_abandoned": timedelta(hours=1)}
    now = population.end
    started = time.process_time()
    for body in bodies:
        try:
            kind, detail = parse_event(body, now)
        except RejectedEvent:
            continue
        ingest(store, kind, detail, delays)
    elapsed = time.process_time() - started
    return {"ingest_cpu_us_per_event": round(elapsed / len(bodies) * 1e6, 1)}


def pipeline_requests(cdk_out: Path, customers: int, seed: int) -> dict[str, Any]:
    """AWS requests per record for each function over a demo stream, counted as they are made."""
    from infra.local import demo

    out = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    seen: list[Any] = []
    summary = demo.run(customers=customers, seed=seed, out=out, progress=False, cdk_out=cdk_out, inspect=seen.append)
    figures: dict[str, Any] = {"bench_events": summary["events_published"]}
    for function in seen[0].functions.values():
        ddb = sum(n for call, n in function.aws_calls.items() if call.startswith("dynamodb."))
        figures[f"{function.name}_records"] = function.records
        figures[f"{function.name}_ddb_requests_per_record"] = round(ddb / max(function.records, 1), 3)
        figures[f"{function.name}_aws_requests_per_record"] = round(
            sum(function.aws_calls.values()) / max(function.records, 1), 3
        )
    figures["ddb_requests_per_event"] = figures["ingest_ddb_requests_per_record"]
    return figures


def measurement() -> dict[str, Any]:
    """Does the statistics do what it claims? Time-uniform coverage of the uplift confidence sequence on simulated
    experiments with a known effect (60 daily looks each; the fixed-n interval read the same way, for contrast), and
    the offline estimators' relative errors on the Open Bandit Dataset (each policy's value from the other's log)."""
    from nextbest.uplift import coverage

    from infra import ope_validation

    figures: dict[str, Any] = {
        "uplift_ci_coverage": coverage(500, metric="both"),
        "uplift_ci_coverage_conversion": coverage(500, metric="conversion"),
        "uplift_ci_coverage_revenue": coverage(500, metric="revenue_per_recipient"),
        "uplift_ci_coverage_fixed_n": coverage(500, metric="both", method="fixed"),
    }
    return figures | ope_validation.figures(ope_validation.validate())


def run(customers: int = 500, seed: int = 7) -> dict[str, Any]:
    from infra.local.demo import synthesize

    cdk_out = synthesize(Path(tempfile.mkdtemp(prefix="nextbest-cdk-")))
    results: dict[str, Any] = {}
    for step in ("ingest", "decide", "deliver", "feedback"):
        results |= import_seconds(cdk_out, step)
    results |= domain_cpu(customers, seed)
    results |= pipeline_requests(cdk_out, customers, seed)
    results |= measurement()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results
