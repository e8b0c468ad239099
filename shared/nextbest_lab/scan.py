"""Reading a whole table (the demo's, or a deployed stack's for an export): its profiles, identity links and
decisions, one Scan, each item decoded once; and following identity links to where a person is now."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from nextbest.aws.store.table import document

Kind = Literal["profile", "link", "decision"]


def items(ddb: Any, table: str) -> Iterator[tuple[Kind, str, Any]]:
    """``("profile", key, document)``, ``("link", identifier, canonical key)`` and ``("decision", pk, record)`` for
    every such item of ``table`` (other items: counters, markers, bodies, are skipped)."""
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            sk, pk = item["sk"]["S"], item["pk"]["S"]
            if sk == "PROFILE" and "doc" in item:
                yield "profile", pk, document(item)
            elif sk == "PROFILE" and "canonical" in item:
                yield "link", pk, item["canonical"]["S"]
            elif sk == "DECISION":
                yield "decision", pk, document(item)


def follow(links: Mapping[str, str], key: str, found: Callable[[str], bool] = lambda _: False) -> str:
    """Where ``key`` leads now: its redirect's target, that target's, and so on (a profile merged since), stopping
    early at a key ``found`` accepts; bounded by the number of links, so a cycle cannot hang it."""
    for _ in range(len(links) + 1):
        if found(key) or key not in links:
            break
        key = links[key]
    return key
