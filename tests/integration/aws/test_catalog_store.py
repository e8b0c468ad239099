"""The catalog on the emulated table: decide reads what a message may show in one BatchGetItem and never recommends
what is not in stock; ``nextbest catalog import`` loads a file and reports the rows it refuses."""

from decimal import Decimal

from nextbest.aws.store import Store
from nextbest.core.catalog import Product
from nextbest.core.commands import DueTrigger
from nextbest.core.events import CHANNELS, CartUpdated, LineItem
from nextbest.decide.service import Decider
from nextbest.ingest.service import ingest
from nextbest_cli.main import main

from tests.builders import CAMPAIGNS, DELAYS, DUE, POLICY, Alarms, Collect, known_customer, table_store
from tests.conftest import T0

SITE = "https://shop.example"


class Scores:
    lapse_risk, purchase_propensity, model_versions = 0.1, 0.3, {}
    recommendations = ("sku-2", "sku-3", "sku-4", "sku-5")

    def score(self, profile, now):
        return self


def test_decide_reads_the_products_it_may_show_in_one_batch_get_item_and_recommends_only_those_in_stock(emulation):
    store = table_store(emulation)
    for sku, availability in [("sku-1", "in_stock"), ("sku-2", "out_of_stock"), ("sku-3", "removed"),
                              ("sku-5", "in_stock")]:  # fmt: skip
        assert store.put_product(Product(event_id=f"e-{sku}", occurred_at=T0, product_id=sku, name=f"Name of {sku}",
                                         url=f"{SITE}/products/{sku}", price=Decimal("20.00"),
                                         availability=availability)).outcome == "written"  # fmt: skip
    known_customer(store, {"email": True}, email="ann@example.org")
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id="cus_1", items=[item]), DELAYS)
    client = emulation.client("dynamodb")
    reads: list[list[str]] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **_: reads.append(
            sorted(k["pk"]["S"] for t in params["RequestItems"].values() for k in t["Keys"])
        ),
    )
    campaigns = [c.model_copy(update={"variants": [c.variant("reminder")]}) if c.id == "cart-abandonment" else c
                 for c in CAMPAIGNS]  # fmt: skip
    decider = Decider(Store(emulation.output("TableName"), client=client), dict.fromkeys(CHANNELS, Collect()),
                      Collect(), Alarms(), campaigns, POLICY, SITE, models=Scores())  # fmt: skip
    decision = decider.handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE)
    assert decision is not None and decision.action == "send"
    catalog_reads = [keys for keys in reads if any(k.startswith("cat:") for k in keys)]
    assert catalog_reads == [["cat:sku-1", "cat:sku-2", "cat:sku-3", "cat:sku-4", "cat:sku-5"]]
    html = decision.messages["email"].html
    assert "Name of sku-5" in html and f"{SITE}/products/sku-5?utm_source=nextbest" in html
    assert not any(f"Name of {sku}" in html for sku in ("sku-2", "sku-3"))


def test_an_import_loads_the_good_rows_and_reports_each_bad_one_with_file_row_and_reason(emulation, tmp_path, capsys):
    table = emulation.output("TableName")
    path = tmp_path / "catalog.csv"
    path.write_text(
        "product_id,name,url,image_url,price,currency,category,availability\n"
        "sku-1,Serum,https://shop.example/p/serum,https://shop.example/i/serum.jpg,32.00,USD,skincare,in_stock\n"
        "sku-2,Mask,https://shop.example/p/mask,,free,USD,skincare,in_stock\n"
        "sku-3,Oil,https://shop.example/p/oil,,58.00,USD,skincare,out_of_stock\n"
    )
    assert main(["catalog", "import", "--table", table, "--file", str(path)]) == 1
    out, err = capsys.readouterr()
    assert err.strip() == f"nextbest catalog import: {path}: row 3: price: Input should be a valid decimal"
    assert (
        out.strip() == "2 products imported, 0 unchanged (the table holds this state or a newer one), 1 rows rejected"
    )
    catalog = Store(table).products(["sku-1", "sku-2", "sku-3"])
    assert sorted(catalog) == ["sku-1", "sku-3"] and catalog["sku-3"].availability == "out_of_stock"
    # a file that cannot be read is one line on stderr, exit 2
    assert main(["catalog", "import", "--table", table, "--file", str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
