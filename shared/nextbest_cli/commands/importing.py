"""``nextbest import``: load a shop's existing customers, consents and orders into a deployed table, by ingest's rules.

See ``nextbest.ingest.history`` for what the rows become and why an import can be re-run or resumed safely.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

STATE = Path(".nextbest/import")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    found = commands.add_parser(
        "import",
        help="load existing customers, consents and orders (CSV or JSON lines) into a deployed table",
        description="Rows become the events ingest applies (identity merges, consent, orders counted once); "
        "history arms no trigger that is already due. Re-running or resuming an import changes nothing it did.",
    )
    found.add_argument("--table", required=True, help="the stack's table (output TableName)")
    found.add_argument("--secret", required=True, help="the erasure key's secret (output ErasureKey)")
    found.add_argument("--customers", type=Path, help="customer_id, email, phone, first_name, time_zone, signed_up_at")
    found.add_argument("--consents", type=Path, help="customer_id (or email/phone), channel, granted, at, source")
    found.add_argument(
        "--orders", type=Path, help="order_id, customer_id, at, total, currency; product_id, name, quantity, "
        "unit_price, category per line item (one row per item), or an items list in JSON lines"
    )  # fmt: skip
    found.add_argument("--campaigns", type=Path, default=Path("campaigns"), help="the campaigns the stack runs")
    found.add_argument("--state", type=Path, default=STATE, help="where progress and rejected rows are written")
    found.add_argument("--chunk", type=int, default=100, help="customers per batch")
    found.add_argument("--workers", type=int, default=8, help="batches written at once")
    found.set_defaults(run=run)


def rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, row) of a CSV file (with a header line) or of JSON lines (``.jsonl``, ``.ndjson``, ``.json``)."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as error:
                        yield number, {"__error__": f"not JSON: {error.msg}"}
        return
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: give a .csv file (with a header line) or JSON lines (.jsonl)")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row


def run(args: argparse.Namespace) -> int:
    from nextbest.aws import secrets
    from nextbest.aws.store import Store
    from nextbest.core import clock
    from nextbest.core.campaigns import load_campaigns, load_policy, trigger_delays
    from nextbest.ingest.history import KINDS, History, chunks, load, read
    from rich.progress import Progress

    files = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind) is not None}
    if not files:
        raise ValueError("nothing to import: give --customers, --consents and/or --orders")
    now = clock.now()
    zone = load_policy(args.campaigns).quiet_hours.default_time_zone  # where date triggers fire, zone unknown
    delays = trigger_delays(load_campaigns(args.campaigns), zone)
    history = History()
    for kind, path in files.items():
        read(kind, str(path), rows(path), now, history)
    args.state.mkdir(parents=True, exist_ok=True)
    rejected = args.state / "rejected.csv"
    with rejected.open("w", newline="", encoding="utf-8") as out:
        report = csv.writer(out)
        report.writerow(["file", "row", "reason"])
        report.writerows((r.file, r.row, r.reason) for r in history.rejected)
    progress_file = args.state / "progress.json"
    done = _done(progress_file, files)
    batches = list(chunks(history, args.chunk))
    todo = [i for i in range(len(batches)) if i not in done]
    local = threading.local()

    def write(index: int) -> tuple[int, int]:
        if not hasattr(local, "store"):  # a store (and its cache) per thread
            local.store = Store(args.table, erasure_key=lambda: secrets.erasure_key(args.secret))
        results = load(local.store, batches[index], now, delays)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]
        return index, len(batches[index])

    started, imported = time.perf_counter(), 0
    with Progress(disable=not sys.stdout.isatty()) as bar, ThreadPoolExecutor(max(1, args.workers)) as pool:
        task = bar.add_task("import", total=len(history.events), completed=sum(len(batches[i]) for i in done))
        for future in as_completed([pool.submit(write, i) for i in todo]):
            index, customers = future.result()  # a batch that failed stops the import; a re-run resumes here
            done.add(index)
            imported += customers
            progress_file.write_text(json.dumps({"files": _names(files), "done": sorted(done)}))
            bar.update(task, advance=customers)
    seconds = time.perf_counter() - started
    rate = imported / seconds if seconds else 0.0
    print(f"{imported} customers imported ({rate:,.0f}/s), {len(batches) - len(todo)} batches already done before")
    print(f"{len(history.rejected)} rows rejected, each with its file, line and reason: {rejected}")
    return 0


def _names(files: Mapping[str, Path]) -> dict[str, str]:
    """What identifies an import: its files, as they are now (a file changed since is another import)."""
    return {kind: f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for kind, path in files.items()}


def _done(progress_file: Path, files: Mapping[str, Path]) -> set[int]:
    """The batches a previous run of the same import finished (none if it imported other files)."""
    if not progress_file.exists():
        return set()
    state = json.loads(progress_file.read_text())
    return set(state["done"]) if state.get("files") == _names(files) else set()
