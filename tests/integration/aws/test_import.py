"""Issue 15, bulk import: `nextbest import` loads customers, consents and orders into the emulated stack's table by
ingest's rules (identity merges, consent, orders counted once), arms no trigger already due, reports rejected rows
with file, line and reason, and can be re-run or resumed after a crash without changing what it did."""

import csv
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from nextbest.core.events import CartUpdated, LineItem
from nextbest.core.profiles import LAPSE
from nextbest.ingest import history
from nextbest.ingest.service import ingest
from nextbest_cli import main

from tests.builders import table_store
from tests.conftest import T0

DELAYS = {"cart_abandoned": timedelta(hours=1)}


def write_csv(path, header, rows):
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path):
    old = (T0 - timedelta(days=200)).isoformat()
    recent = (T0 - timedelta(days=20)).isoformat()
    customers = write_csv(
        tmp_path / "customers.csv",
        ["customer_id", "email", "phone", "first_name", "time_zone", "signed_up_at"],
        [
            ["cus_1", "ann@example.org", "+14155550101", "Ann", "Europe/Paris", old],
            ["cus_2", "bob@example.org", "", "Bob", "", old],
            ["", "nobody@example.org", "", "", "", old],  # line 4: no customer id
            ["cus_3", "not-an-address", "", "", "", old],  # line 5: a bad e-mail address
        ],
    )
    consents = write_csv(
        tmp_path / "consents.csv",
        ["customer_id", "channel", "granted", "at", "source"],
        [
            ["cus_1", "email", "true", old, "signup"],
            ["cus_1", "sms", "yes", old, "signup"],
            ["cus_2", "email", "true", old, "signup"],
            ["cus_2", "email", "false", recent, "preference_center"],  # withdrawn later: the newest wins
            ["cus_2", "email", "perhaps", recent, ""],  # line 6: neither granted nor withdrawn
        ],
    )
    orders = tmp_path / "orders.jsonl"
    lines = [
        {"order_id": "o-1", "customer_id": "cus_1", "at": old, "total": "50.00",
         "items": [{"product_id": "sku-1", "name": "Serum", "quantity": 1, "unit_price": "50.00"}]},
        {"order_id": "o-2", "customer_id": "cus_1", "at": recent, "total": "30.00",
         "items": [{"product_id": "sku-2", "name": "Cream", "quantity": 2, "unit_price": "15.00"}]},
    ]  # fmt: skip
    orders.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n")
    line_items = write_csv(
        tmp_path / "orders.csv",
        ["order_id", "customer_id", "at", "product_id", "name", "quantity", "unit_price"],
        [
            ["o-3", "cus_2", recent, "sku-1", "Serum", "1", "50.00"],
            ["o-3", "cus_2", recent, "sku-3", "Mask", "2", "5.00"],  # the same order's second item
            ["o-4", "cus_2", recent, "", "", "", ""],  # line 4: an order without items
        ],
    )
    return {"customers": customers, "consents": consents, "orders": orders, "line_items": line_items}


def run_import(emulation, tmp_path, *kinds, files, extra=()):
    args = ["import", "--table", emulation.output("TableName"), "--secret", emulation.output("ErasureKey")]
    for kind in kinds:
        args += [f"--{'orders' if kind == 'line_items' else kind}", str(files[kind])]
    return main.main([*args, "--state", str(tmp_path / "state"), *extra])


def profile_of(store, key):
    store.forget()
    return store.resolve([key])[key]


def test_an_import_applies_ingests_rules_and_reports_each_rejected_row(emulation, tmp_path, files):
    store = table_store(emulation)
    cart = CartUpdated(
        event_id="live-1",
        occurred_at=T0 - timedelta(minutes=5),
        email="ann@example.org",
        items=[LineItem(product_id="sku-9", name="Oil", quantity=1, unit_price=Decimal("12.00"))],
    )
    ingest(store, "cart.updated", cart, DELAYS)  # a live shopper known by e-mail only, before the import

    assert run_import(emulation, tmp_path, "customers", "consents", "orders", files=files) == 0

    ann = profile_of(store, "c:cus_1")
    assert ann.key == "c:cus_1" and profile_of(store, "e:ann@example.org").key == "c:cus_1"  # merged, by ingest's rules
    assert ann.cart is not None and ann.cart.items  # what she did live is kept
    assert sorted(o.order_id for o in ann.orders) == ["o-1", "o-2"]
    assert ann.has_consent("email") and ann.has_consent("sms")
    bob = profile_of(store, "c:cus_2")
    assert not bob.has_consent("email")  # the newest statement wins

    rejected = list(csv.DictReader((tmp_path / "state" / "rejected.csv").open()))
    found = {(r["file"].rsplit("/", 1)[-1], r["row"]): r["reason"] for r in rejected}
    assert set(found) == {("customers.csv", "4"), ("customers.csv", "5"), ("consents.csv", "6"), ("orders.jsonl", "3")}
    assert "customer_id" in found[("customers.csv", "4")] and "email" in found[("customers.csv", "5")]
    assert "granted" in found[("consents.csv", "6")] and "JSON" in found[("orders.jsonl", "3")]


def test_orders_given_one_row_per_line_item_are_one_order_and_one_without_items_is_refused(emulation, tmp_path, files):
    assert run_import(emulation, tmp_path, "customers", "line_items", files=files) == 0
    bob = profile_of(table_store(emulation), "c:cus_2")
    assert [(o.order_id, o.total) for o in bob.orders] == [("o-3", Decimal("60.00"))]
    rejected = list(csv.DictReader((tmp_path / "state" / "rejected.csv").open()))
    names = [(r["file"].rsplit("/", 1)[-1], r["row"]) for r in rejected]
    assert [(name, row) for name, row in names if name.startswith("orders")] == [("orders.csv", "4")]


def test_imported_history_arms_no_trigger_already_due_and_spreads_the_lapse_checks_over_the_week(
    emulation, tmp_path, files
):
    assert run_import(emulation, tmp_path, "customers", "orders", files=files) == 0
    ann = profile_of(table_store(emulation), "c:cus_1")
    assert all(due > T0 for due in ann.triggers.values())  # nothing fires for last month's order
    assert "post_purchase" not in ann.triggers
    assert T0 < ann.triggers[LAPSE] <= T0 + timedelta(days=8)  # her lapse check: within the coming week


def test_an_import_run_twice_changes_nothing_the_first_run_did(emulation, tmp_path, files):
    assert run_import(emulation, tmp_path, "customers", "consents", "orders", files=files) == 0
    store = table_store(emulation)
    first = profile_of(store, "c:cus_1").model_dump()
    (tmp_path / "state" / "progress.json").unlink()  # forget the progress: every batch is written again
    assert run_import(emulation, tmp_path, "customers", "consents", "orders", files=files) == 0
    assert profile_of(store, "c:cus_1").model_dump() == first


def test_an_import_that_crashed_resumes_after_the_last_batch_it_finished(emulation, tmp_path, files, monkeypatch):
    written = []
    original = history.load

    def crash_on_the_second_batch(store, chunk, now, delays):
        if written:
            raise TimeoutError("the connection dropped")
        written.append(chunk)
        return original(store, chunk, now, delays)

    monkeypatch.setattr(history, "load", crash_on_the_second_batch)
    extra = ("--chunk", "1", "--workers", "1")
    assert run_import(emulation, tmp_path, "customers", "orders", files=files, extra=extra) == 2  # one clear line
    progress = json.loads((tmp_path / "state" / "progress.json").read_text())
    assert progress["done"] == [0]

    resumed = []
    monkeypatch.setattr(
        history, "load", lambda store, chunk, now, delays: resumed.append(chunk) or original(store, chunk, now, delays)
    )
    assert run_import(emulation, tmp_path, "customers", "orders", files=files, extra=extra) == 0
    assert written[0] not in resumed and len(resumed) == 1  # the batch left, not the one already done
    assert sorted(o.order_id for o in profile_of(table_store(emulation), "c:cus_1").orders) == ["o-1", "o-2"]


def test_an_import_in_two_shards_run_side_by_side_imports_what_one_run_does(emulation, tmp_path, files, capsys):
    # Given the same files imported in two shards, one batch (one customer) each
    extra = ("--chunk", "1")
    for shard in ("0/2", "1/2"):
        assert (
            run_import(
                emulation, tmp_path, "customers", "consents", "orders", files=files, extra=(*extra, "--shard", shard)
            )
            == 0
        )
    # Then each shard wrote its own batches (its own progress), and together every customer is there
    progress = [json.loads((tmp_path / "state" / f"progress-{i}-of-2.json").read_text())["done"] for i in (0, 1)]
    assert progress == [[0], [0]]  # one of the two batches each
    store = table_store(emulation)
    assert sorted(o.order_id for o in profile_of(store, "c:cus_1").orders) == ["o-1", "o-2"]
    assert not profile_of(store, "c:cus_2").has_consent("email")
    # And a shard run again has nothing left to do; a shard that does not exist is refused with one clear line
    capsys.readouterr()
    again = ("customers", "consents", "orders")
    assert run_import(emulation, tmp_path, *again, files=files, extra=(*extra, "--shard", "0/2")) == 0
    assert capsys.readouterr().out.startswith("0 customers imported")
    with pytest.raises(SystemExit) as refused:
        run_import(emulation, tmp_path, "customers", files=files, extra=("--shard", "2/2"))
    assert refused.value.code == 2
