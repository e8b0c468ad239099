"""The catalog through the emulated stack, as a shop uses it: products on the bus, a reminder showing them with links
to the shop's own pages, and the order that comes back through such a link credited to the message."""

import email as mail_parser
import json
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from nextbest.aws.store import Store
from nextbest.aws.store.table import profile_of
from nextbest_cli.explain import from_table

from tests.builders import table_store
from tests.conftest import T0, sample
from tests.e2e.test_pipeline import dead_letters, event, put


def product_event(**detail):
    e = sample("product.updated.json")
    e["detail"].update(detail)
    return e


def test_product_events_reach_the_catalog_the_newest_wins_and_a_bad_one_waits_in_the_dead_letter_queue(emulation):
    older = product_event(event_id="ev-old", occurred_at="2026-11-01T07:00:00Z", name="Old name")
    sold_out = product_event(event_id="ev-sold-out", occurred_at="2026-11-02T08:00:00Z", availability="out_of_stock")
    no_page = product_event(event_id="ev-no-page", product_id="sku-002")
    del no_page["detail"]["url"]
    put(emulation, product_event(), sold_out, no_page)
    emulation.drain()
    put(emulation, older)  # late, and older than what the catalog holds: changes nothing
    emulation.drain()
    catalog = Store(emulation.output("TableName")).products(["sku-001", "sku-002"])
    assert list(catalog) == ["sku-001"]
    assert (catalog["sku-001"].name, catalog["sku-001"].availability) == ("Hydrating serum", "out_of_stock")
    assert catalog["sku-001"].category_url == "https://shop.example/collections/skincare"  # the category's page
    rejected = [m for messages in dead_letters(emulation).values() for m in messages]
    assert [m["MessageAttributes"]["reason"]["StringValue"] for m in rejected] == ["invalid_detail"]
    assert json.loads(rejected[0]["Body"])["detail"]["event_id"] == "ev-no-page"


def test_a_reminder_shows_the_catalog_s_product_and_the_order_placed_through_its_link_is_credited_to_it(emulation):
    # Given the shop's catalog and a customer who left a serum in the cart
    put(emulation, product_event(), event("cart.updated"), event("customer.identified"), event("consent.updated"))
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=2))
    [sent] = emulation.sent_emails()
    mail = mail_parser.message_from_string(sent.raw_data)
    [html] = [p.get_payload(decode=True).decode() for p in mail.walk() if p.get_content_type() == "text/html"]
    # Then the e-mail shows the product as the catalog has it, and links to the shop's own pages
    assert "https://shop.example/images/hydrating-serum.jpg" in html and "Hydrating serum" in html
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]
    assert hrefs and all(h.startswith("https://shop.example/") for h in hrefs)
    product = next(h for h in hrefs if h.startswith("https://shop.example/products/hydrating-serum?"))
    tags = parse_qs(urlsplit(product).query)
    decision_id = tags["nb"][0]
    assert tags["utm_source"] == ["nextbest"] and tags["utm_medium"] == ["email"]
    assert tags["utm_campaign"] == ["cart-abandonment"] and tags["utm_content"][0] in ("reminder", "urgency")
    assert any(h.startswith("https://shop.example/cart?") and f"nb={decision_id}" in h for h in hrefs)
    # When the customer orders through that link, and the shop passes its nb on with the order
    emulation.advance(T0 + timedelta(hours=3))
    put(emulation, event("order.placed", occurred_at=(T0 + timedelta(hours=2, minutes=30)).isoformat(), nb=decision_id))
    emulation.drain()
    # Then the order is credited to that message: on the customer's message log and in its funnel
    ddb, table = emulation.client("dynamodb"), emulation.output("TableName")
    profile = profile_of(ddb.get_item(TableName=table, Key={"pk": {"S": "c:cus_5"}, "sk": {"S": "PROFILE"}})["Item"])
    [message] = [m for m in profile.messages if m.decision_id == decision_id]
    assert message.converted_at is not None and message.revenue == Decimal("32.00")
    assert profile.orders[-1].decision_id == decision_id
    funnel = table_store(emulation).counts("cart-abandonment")[f"FUNNEL#{tags['utm_content'][0]}#email"]  # tallied
    assert funnel["conversions"] == 1 and funnel["revenue"] == Decimal("32.00")
    # And `nextbest explain --table` finds that message by the customer's e-mail or phone, as well as their id
    for who in ("ann@example.org", "+14155550100", "cus_5"):
        key, found = from_table(table, who)
        assert key == "c:cus_5" and decision_id in [d.decision_id for d in found]
