"""``nextbest import``'s work: read the files, import the customers in batches from several threads, keep the
progress so that a stopped import resumes (``nextbest.ingest.history`` says what the rows become and why a re-run
changes nothing)."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Imported:
    customers: int
    """Customers written by this run."""
    seconds: float
    already_done: int
    """Batches a previous run of the same import had finished."""
    rejected: int
    report: Path
    """The rejected rows: file, line, reason."""

    @property
    def rate(self) -> float:
        return self.customers / self.seconds if self.seconds else 0.0


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


def import_files(
    table: str,
    secret: str,
    files: Mapping[str, Path],
    campaigns: Path,
    state: Path,
    chunk: int = 100,
    workers: int = 8,
    progress: bool = False,
    shard: tuple[int, int] = (0, 1),
) -> Imported:
    """Import ``files`` (kind -> path: customers, consents, orders) into ``table``; progress and the rejected rows
    go to ``state``. A batch that fails stops the import (its error is raised); a re-run resumes after the batches
    done.

    ``shard`` (i, n) imports every n-th batch from the i-th: one process spends a few milliseconds of CPU on each
    customer (ingest's rules, the SDK's requests) whatever its threads, so a large import runs as n processes, one
    per shard, each with its own progress (and its own copy of the rejected rows, which every shard reads)."""
    from nextbest.aws import secrets
    from nextbest.aws.store import Store
    from nextbest.core import clock
    from nextbest.core.campaigns import load_campaigns, load_policy, trigger_delays
    from nextbest.ingest import history as rules
    from rich.progress import Progress

    if not files:
        raise ValueError("nothing to import: give --customers, --consents and/or --orders")
    now = clock.now()
    zone = load_policy(campaigns).quiet_hours.default_time_zone  # where date triggers fire, zone unknown
    delays = trigger_delays(load_campaigns(campaigns), zone)
    found = rules.History()
    for kind, path in files.items():
        rules.read(kind, str(path), rows(path), now, found)
    index, shards = shard
    if not 0 <= index < shards:
        raise ValueError(f"shard {index}/{shards}: give i/n with 0 <= i < n")
    suffix = "" if shards == 1 else f"-{index}-of-{shards}"
    state.mkdir(parents=True, exist_ok=True)
    report = state / f"rejected{suffix}.csv"
    with report.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "row", "reason"])
        writer.writerows((r.file, r.row, r.reason) for r in found.rejected)
    progress_file = state / f"progress{suffix}.json"
    done = _done(progress_file, files)
    batches = [b for n, b in enumerate(rules.chunks(found, chunk)) if n % shards == index]
    todo = [i for i in range(len(batches)) if i not in done]
    local = threading.local()

    def write(index: int) -> tuple[int, int]:
        if not hasattr(local, "store"):  # a store (and its cache) per thread
            local.store = Store(table, erasure_key=lambda: secrets.erasure_key(secret))
        results = rules.load(local.store, batches[index], now, delays)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]
        return index, len(batches[index])

    started, imported = time.perf_counter(), 0
    with Progress(disable=not progress) as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        total = sum(len(batch) for batch in batches)
        task = bar.add_task("import", total=total, completed=sum(len(batches[i]) for i in done))
        for future in as_completed([pool.submit(write, i) for i in todo]):
            index, customers = future.result()  # a batch that failed stops the import; a re-run resumes here
            done.add(index)
            imported += customers
            progress_file.write_text(json.dumps({"files": _names(files), "done": sorted(done)}))
            bar.update(task, advance=customers)
    seconds = time.perf_counter() - started
    return Imported(imported, seconds, len(batches) - len(todo), len(found.rejected), report)


def _names(files: Mapping[str, Path]) -> dict[str, str]:
    """What identifies an import: its files, as they are now (a file changed since is another import)."""
    return {kind: f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for kind, path in files.items()}


def _done(progress_file: Path, files: Mapping[str, Path]) -> set[int]:
    """The batches a previous run of the same import finished (none if it imported other files)."""
    if not progress_file.exists():
        return set()
    state = json.loads(progress_file.read_text())
    return set(state["done"]) if state.get("files") == _names(files) else set()
