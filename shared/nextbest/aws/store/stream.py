"""The table's stream records (NEW_AND_OLD_IMAGES, as Lambda hands them to the tally) as the changes it counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nextbest.aws.store.table import CREDITS, DECISION, PROFILE, document
from nextbest.core.counters import FACTS, Change, Version, load_credits, tally
from nextbest.core.decision import Decision


def change(record: Mapping[str, Any]) -> Change:
    """What one stream record counts: a decision record's change (``nextbest.core.counters.tally``), or the
    credits a profile write carries; nothing for anything else (a decision's body, written once with its record,
    holds only its rendered messages: the mapping's filter keeps it from the tally, and so does this)."""
    stream = record["dynamodb"]
    sequence = int(stream["SequenceNumber"])
    old, new = stream.get("OldImage"), stream.get("NewImage")
    kind = stream["Keys"]["sk"]["S"]
    if kind == DECISION and new is not None and "doc" in new:
        decision = Decision.model_validate(document(new))  # the record's JSON, zlib-compressed
        return Change(sequence, tuple(tally(decision, _version(old), _version(new))))
    if kind == PROFILE and new is not None and CREDITS in new:
        return Change(sequence, tuple(load_credits(new[CREDITS]["S"])))
    return Change(sequence)


def _version(image: Mapping[str, Any] | None) -> Version | None:
    if image is None:
        return None
    return image["status"]["S"], {name for name in FACTS if name in image}
