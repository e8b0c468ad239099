"""What a message shows of the catalog: names, images, prices and the shop's product pages, tagged for attribution;
never a product out of stock, removed or unknown to the catalog among its recommendations."""

from decimal import Decimal

from nextbest.core.catalog import Product
from nextbest.core.commands import DueTrigger
from nextbest.core.events import CHANNELS
from nextbest.decide.service import Decider
from nextbest.memory import MemoryStore

from tests.builders import CAMPAIGNS, DUE, POLICY, Alarms, Collect, known_customer
from tests.conftest import T0

SITE = "https://shop.example"


class Scores:
    """What the models would say: a likely buyer, and these recommendations, best first."""

    lapse_risk, purchase_propensity, model_versions = 0.1, 0.3, {}

    def __init__(self, recommendations):
        self.recommendations = recommendations

    def score(self, profile, now):
        return self


def sold(sku, availability="in_stock", name=None, price="20.00"):
    return Product(event_id=f"e-{sku}", occurred_at=T0, product_id=sku, name=name or f"Product {sku}",
                   url=f"{SITE}/products/{sku}", image_url=f"{SITE}/images/{sku}.jpg", price=Decimal(price),
                   availability=availability)  # fmt: skip


def reminder(store, recommendations, cart_url=""):
    """The cart reminder (its variant showing recommendations) decided for a customer who left sku-1 in the cart."""
    from nextbest.core.events import CartUpdated, LineItem
    from nextbest.ingest.service import ingest

    from tests.builders import DELAYS

    known_customer(store, {"email": True}, email="ann@example.org")
    item = LineItem(product_id="sku-1", name="Serum (as the cart said)", quantity=2, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id="cus_1", items=[item]), DELAYS)
    campaigns = [
        c.model_copy(update={"variants": [c.variant("reminder")]}) if c.id == "cart-abandonment" else c
        for c in CAMPAIGNS
    ]
    decider = Decider(store, dict.fromkeys(CHANNELS, Collect()), Collect(), Alarms(), campaigns, POLICY, SITE,
                      models=Scores(recommendations), cart_url=cart_url)  # fmt: skip
    decision = decider.handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE)
    assert decision is not None and decision.action == "send" and decision.variant == "reminder"
    return decision


def test_recommendations_are_only_products_in_stock_and_show_their_name_image_price_and_page():
    store = MemoryStore()
    for product in [sold("sku-1", name="Hydrating serum"), sold("sku-2", "out_of_stock"), sold("sku-3", "removed"),
                    sold("sku-5", name="Body mist", price="24.00")]:  # fmt: skip
        store.put_product(product)
    decision = reminder(store, ["sku-2", "sku-3", "sku-4", "sku-5"])  # sku-4: unknown to the catalog
    html = decision.messages["email"].html
    assert "Body mist" in html and f"{SITE}/images/sku-5.jpg" in html and "24.00 USD" in html
    assert f'href="{SITE}/products/sku-5?utm_source=nextbest&amp;utm_medium=email' in html
    for never in ("sku-2", "sku-3", "sku-4"):
        assert never not in html
    # the cart's line shows the catalog's name and image and links to the product's page
    assert "Hydrating serum" in html and "as the cart said" not in html and f"{SITE}/images/sku-1.jpg" in html
    assert f"{SITE}/products/sku-1?utm_source=nextbest" in html
    assert decision.products == ["sku-1"]


def test_with_nothing_in_stock_to_recommend_the_message_recommends_nothing():
    store = MemoryStore()
    store.put_product(sold("sku-2", "out_of_stock"))
    decision = reminder(store, ["sku-2", "sku-4"])
    assert "You might also like" not in decision.messages["email"].html
    assert "sku-2" not in decision.messages["email"].html


def test_each_channel_s_link_names_its_medium_the_campaign_the_variant_and_the_decision():
    store = MemoryStore()
    decision = reminder(store, [])
    tags = f"utm_campaign=cart-abandonment&utm_content=reminder&nb={decision.decision_id}"
    assert f"{SITE}/cart?utm_source=nextbest&utm_medium=email&{tags}" in decision.messages["email"].text
    assert f"{SITE}/cart?utm_source=nextbest&utm_medium=sms&{tags}" in decision.messages["sms"].text
    assert decision.messages["sms"].text.endswith("Reply STOP to opt out.")  # the link did not push it past the cut


def test_a_shop_whose_cart_is_elsewhere_gets_its_cart_page_in_cart_reminders():
    decision = reminder(MemoryStore(), [], cart_url="https://shop.example/checkout/basket")
    assert "https://shop.example/checkout/basket?utm_source=nextbest&utm_medium=sms" in decision.messages["sms"].text


def in_category(sku, category="Skincare", page=f"{SITE}/collections/skincare", availability="in_stock"):
    return sold(sku, availability).model_copy(update={"category": category, "category_url": page})


def browsed(store, sku, recommendations=(), campaigns=None):
    """The browse reminder decided for a customer who viewed ``sku`` and left without a cart."""
    from datetime import timedelta

    from nextbest.core.events import ProductViewed
    from nextbest.ingest.service import ingest

    delays = {"browse_abandoned": timedelta(hours=4)}
    known_customer(store, {"email": True}, email="ann@example.org")
    ingest(store, "product.viewed", ProductViewed(event_id="v", occurred_at=T0, customer_id="cus_1", product_id=sku),
           delays)  # fmt: skip
    due = store.profile("c:cus_1").triggers["browse_abandoned"]
    decider = Decider(store, dict.fromkeys(CHANNELS, Collect()), Collect(), Alarms(), campaigns or CAMPAIGNS, POLICY,
                      SITE, models=Scores(list(recommendations)))  # fmt: skip
    decision = decider.handle(DueTrigger(profile_key="c:cus_1", trigger="browse_abandoned", due_at=due), due)
    assert decision is not None and decision.action == "send" and decision.campaign_id == "browse-abandonment"
    return decision


def test_a_browse_reminder_links_the_viewed_product_s_category_page_with_the_message_s_tags():
    store = MemoryStore()
    store.put_product(in_category("sku-1", page=f"{SITE}/collections/skincare?sort=best"))
    decision = browsed(store, "sku-1")
    tags = f"utm_campaign=browse-abandonment&utm_content=picks&nb={decision.decision_id}"
    page = f"{SITE}/collections/skincare?sort=best&utm_source=nextbest&utm_medium=email&{tags}"
    assert f'More in <a href="{page.replace("&", "&amp;")}">Skincare</a>' in decision.messages["email"].html
    assert f"More in Skincare: {page}" in decision.messages["email"].text


def test_a_category_the_catalog_gives_no_page_for_is_not_linked():
    store = MemoryStore()
    store.put_product(in_category("sku-1", page=None))  # the shop sent the category's name only
    decision = browsed(store, "sku-1")
    assert "More in" not in decision.messages["email"].html and "More in" not in decision.messages["email"].text
    assert "Skincare" not in decision.messages["email"].html


def test_every_product_a_message_shows_can_link_its_category_page():
    """A template's own use: each recommendation's and each cart line's ``category_url``, tagged like every link."""
    store = MemoryStore()
    store.put_product(in_category("sku-1"))
    store.put_product(in_category("sku-5", "Fragrance", f"{SITE}/collections/fragrance"))
    store.put_product(sold("sku-6"))  # no category at all
    decision = browsed(store, "sku-1", ["sku-5", "sku-6"], [
        c.model_copy(update={"variants": [v.model_copy(update={"creative": v.creative.model_copy(update={
            "text": "{% for p in recommendations %}[{{ p.category }} {{ p.category_url }}]{% endfor %}"})})
            for v in c.variants]}) if c.id == "browse-abandonment" else c
        for c in CAMPAIGNS
    ])  # fmt: skip
    tags = "utm_source=nextbest&utm_medium=email&utm_campaign=browse-abandonment&utm_content=picks"
    tags += f"&nb={decision.decision_id}"
    assert decision.messages["email"].text == f"[Fragrance {SITE}/collections/fragrance?{tags}][None None]"


class CountingStore(MemoryStore):
    """The in-memory store, counting its catalog reads (each one request to the table when deployed)."""

    catalog_reads = 0

    def products(self, product_ids):
        self.catalog_reads += 1
        return super().products(product_ids)


def test_a_decision_that_sends_nothing_never_reads_the_catalog_and_a_send_reads_it_once():
    # Given a customer who refused e-mail and left a cart, and a catalog listing the cart's product
    store = CountingStore()
    store.put_product(sold("sku-1"))
    known_customer(store, {"email": False}, email="ann@example.org")
    from nextbest.core.events import CartUpdated, LineItem
    from nextbest.ingest.service import ingest

    from tests.builders import DELAYS

    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id="cus_1", items=[item]), DELAYS)
    decider = Decider(store, dict.fromkeys(CHANNELS, Collect()), Collect(), Alarms(), CAMPAIGNS, POLICY, SITE,
                      models=Scores(["sku-1"]))  # fmt: skip
    # When decide handles the reminder no channel may carry
    decision = decider.handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE)
    # Then it decides to send nothing without a request to the catalog
    assert decision is not None and decision.action == "none"
    assert store.catalog_reads == 0
    # and a reminder that is sent reads the catalog once, for everything its message shows
    sending = CountingStore()
    sending.put_product(sold("sku-1", name="Hydrating serum"))
    assert "Hydrating serum" in reminder(sending, ["sku-1"]).messages["email"].html
    assert sending.catalog_reads == 1
