"""What several commands share: where the demo leaves its files, and the table a summary is printed as."""

from __future__ import annotations

import json
from pathlib import Path

DEMO = Path(".nextbest/demo")
"""Where ``make demo`` leaves its decision log, counters snapshot and report."""


def print_summary(summary: dict[str, object], title: str = "nextbest demo") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, json.dumps(value))
    Console().print(table)
