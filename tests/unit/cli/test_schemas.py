"""Producers' JSON Schemas are generated from the models; the committed copies must not go stale."""

from nextbest_cli.schemas import SCHEMA_DIR, schemas


def test_committed_schemas_match_the_models():
    generated = schemas()
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert committed == generated, "run `make schemas` and commit shared/schemas"
