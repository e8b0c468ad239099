"""The catalog (``nextbest.core.catalog``) and the links messages carry (``nextbest.core.links``)."""

import itertools
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from nextbest.core import links
from nextbest.core.catalog import Product, newer, read_import, recommendable
from nextbest.core.events import RejectedEvent, parse_event

from tests.conftest import T0, sample


def product(at=T0, **fields) -> Product:
    values = {"event_id": "e", "occurred_at": at, "product_id": "sku-1", "name": "Serum",
              "url": "https://shop.example/p/serum", "price": Decimal("32.00")} | fields  # fmt: skip
    return Product.model_validate(values)


def test_the_newest_state_wins_whatever_order_the_states_arrive_in():
    states = [
        product(T0, price=Decimal(30)),
        product(T0 + timedelta(hours=1), availability="out_of_stock"),
        product(T0 + timedelta(hours=1), availability="in_stock", price=Decimal(25)),  # a tie at the same instant
        product(T0 - timedelta(days=1), name="Old name"),
    ]
    finals = set()
    for order in itertools.permutations(states):
        held = None
        for state in order:
            held = state if newer(state, held) else held
        finals.add(held)
    assert len(finals) == 1 and finals.pop().updated_at == T0 + timedelta(hours=1)
    assert not newer(states[0], states[0])  # a repeat changes nothing


def test_only_a_product_in_stock_may_be_recommended():
    assert recommendable(product())
    assert not recommendable(product(availability="out_of_stock"))
    assert not recommendable(product(availability="removed"))
    assert not recommendable(None)  # unknown to the catalog: no name, no page to show


def test_a_product_event_is_validated_like_any_other_and_a_bad_one_is_rejected_with_its_reason():
    envelope = sample("product.updated.json")
    kind, detail = parse_event(_body(envelope), T0)
    assert kind == "product.updated" and detail.product_id == "sku-001" and detail.availability == "in_stock"
    for change, reason in [
        ({"url": None}, "invalid_detail"),  # in stock, yet no page to link to
        ({"url": "javascript:alert(1)"}, "invalid_detail"),
        ({"availability": "discontinued"}, "invalid_detail"),
        ({"price": "-1"}, "invalid_detail"),
        ({"colour": "red"}, "invalid_detail"),
    ]:
        broken = sample("product.updated.json")
        broken["detail"] = {k: v for k, v in {**broken["detail"], **change}.items() if v is not None}
        with pytest.raises(RejectedEvent) as rejected:
            parse_event(_body(broken), T0)
        assert rejected.value.reason == reason
    removal = sample("product.updated.json")
    removal["detail"] = {k: removal["detail"][k] for k in ("event_id", "occurred_at", "product_id")}
    removal["detail"]["availability"] = "removed"
    assert parse_event(_body(removal), T0)[1].availability == "removed"  # a removal needs nothing but the id


def _body(envelope) -> str:
    import json

    return json.dumps(envelope)


def test_an_import_reports_each_bad_row_with_its_file_row_and_reason_and_keeps_the_good_ones():
    text = (
        "product_id,name,url,image_url,price,currency,category,availability\n"
        "sku-1,Serum,https://shop.example/p/serum,https://shop.example/i/serum.jpg,32.00,USD,skincare,in_stock\n"
        "sku-2,Mask,https://shop.example/p/mask,,not-a-price,USD,skincare,in_stock\n"
        "sku-3,,,,,,,removed\n"
        "sku-4,Oil,,,58.00,USD,,out_of_stock\n"
        "sku-5,Cream,https://shop.example/p/cream,,45.00,USD,skincare,in_stock,extra\n"
    )
    products, rejected = read_import(text, "catalog.csv", T0)
    assert sorted(p.product_id for p in products) == ["sku-1", "sku-3"]
    assert [(r.file, r.row) for r in rejected] == [("catalog.csv", 3), ("catalog.csv", 5), ("catalog.csv", 6)]
    assert "price" in rejected[0].reason and "url" in rejected[1].reason
    assert str(rejected[0]).startswith("catalog.csv: row 3: price")
    assert "not-a-price" not in str(rejected[0])  # reasons name fields, never values
    [serum] = [p for p in products if p.product_id == "sku-1"]
    assert serum.image_url == "https://shop.example/i/serum.jpg" and serum.updated_at == T0


def test_a_json_lines_import_reports_a_line_that_is_not_json_and_a_csv_header_it_cannot_read_stops_it():
    text = '{"product_id": "sku-1", "name": "Serum", "url": "https://s/p/1", "price": "3.5"}\n\n{oops\n[1]\n'
    products, rejected = read_import(text, "catalog.jsonl", T0)
    assert [p.product_id for p in products] == ["sku-1"]
    assert [(r.row, r.reason.split(" (")[0]) for r in rejected] == [(3, "not JSON"), (4, "not a JSON object")]
    with pytest.raises(ValueError, match=r"catalog.csv: row 1: unknown columns colour"):
        read_import("product_id,colour\nsku-1,red\n", "catalog.csv", T0)


def test_a_link_carries_the_utm_parameters_and_the_decision_id_and_keeps_the_shop_s_own():
    url = links.tracked(
        "https://shop.example/p/serum?size=50ml&utm_campaign=old#reviews", "sms", "cart-abandonment", "reminder", "d-1"
    )
    parts = urlsplit(url)
    assert (parts.netloc, parts.path, parts.fragment) == ("shop.example", "/p/serum", "reviews")
    assert parse_qs(parts.query) == {
        "size": ["50ml"],
        "utm_source": ["nextbest"],
        "utm_medium": ["sms"],
        "utm_campaign": ["cart-abandonment"],  # an earlier campaign's tag is replaced, never kept beside it
        "utm_content": ["reminder"],
        "nb": ["d-1"],
    }
    assert links.decision_of(url) == "d-1"
    assert links.cart("https://shop.example/") == "https://shop.example/cart"
    assert links.home("https://shop.example") == "https://shop.example/"


def test_an_import_takes_each_product_s_category_page_and_refuses_one_that_is_not_a_web_address():
    text = (
        "product_id,name,url,price,category,category_url\n"
        "sku-1,Serum,https://shop.example/p/serum,32.00,Skincare,https://shop.example/collections/skincare\n"
        "sku-2,Mask,https://shop.example/p/mask,12.00,Skincare,javascript:alert(1)\n"
        "sku-3,Oil,https://shop.example/p/oil,58.00,,\n"
    )
    products, rejected = read_import(text, "catalog.csv", T0)
    pages = {p.product_id: (p.category, p.category_url) for p in products}
    assert pages == {"sku-1": ("Skincare", "https://shop.example/collections/skincare"), "sku-3": (None, None)}
    assert [(r.row, r.reason.split(":")[0]) for r in rejected] == [(3, "category_url")]
