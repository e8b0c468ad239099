"""JSON Schemas for producers, generated from the event models (never written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

from nextbest.core.events import DETAIL_TYPES

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def schemas() -> dict[str, str]:
    """File name → JSON text, one schema per detail-type, for the EventBridge ``detail``."""
    result = {}
    for detail_type, model in DETAIL_TYPES.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://nextbest.dev/schemas/events/{detail_type}.json"
        schema["title"] = detail_type
        result[f"{detail_type}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return result


def write_schemas(directory: Path | None = None) -> list[Path]:
    directory = directory or SCHEMA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
