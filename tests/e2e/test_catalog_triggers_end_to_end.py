"""Back in stock and price drop through the whole emulated stack: customers view, wishlist or cart a product, a
``product.updated`` on the bus changes it, ingest fans the change out through its own queue to the customers
interested, decide answers it with every guardrail, and SES sends each of them one e-mail naming the product.

The stack is synthesized with a campaign set of its own: the repository's policy and the two catalog examples of
``docs/campaigns`` approved (the live set has neither: the demo's simulated shop never runs out of anything)."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from nextbest_cli.explain import explain, from_table

from tests.builders import examples_approved
from tests.conftest import T0
from tests.e2e.test_catalog_end_to_end import product_event
from tests.e2e.test_journeys import decisions
from tests.e2e.test_pipeline import dead_letters, event, put
from tests.e2e.test_triggers_end_to_end import customer, treated

BACK = "catalog:back_in_stock+0m"
DROP = "catalog:price_drop+30m"


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return examples_approved(tmp_path_factory.mktemp("campaigns"), "back-in-stock.toml", "price-drop.toml")


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory, campaigns: Path) -> Path:
    """This module's stack: the emulation fixture runs it instead of the repository's."""
    from infra.local import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out"), campaigns=campaigns)


def opted_out(name: str, email: str, at: datetime) -> list[dict]:
    """A customer identified with this address, who said no to e-mail."""
    when, ids = at.isoformat(), {"customer_id": name, "anonymous_id": None, "phone": None}
    return [
        event("customer.identified", event_id=f"id-{name}", occurred_at=when, email=email, **ids),
        event("consent.updated", event_id=f"no-{name}", occurred_at=when, customer_id=name, granted=False),
    ]


def viewed(name: str, product_id: str, at: datetime) -> dict:
    return event("product.viewed", event_id=f"view-{name}-{product_id}", occurred_at=at.isoformat(),
                 anonymous_id=None, customer_id=name, product_id=product_id)  # fmt: skip


def carted(name: str, product_id: str, at: datetime) -> dict:
    item = {"product_id": product_id, "name": "As the cart said", "quantity": 1, "unit_price": "40.00"}
    return event("cart.updated", event_id=f"cart-{name}-{product_id}", occurred_at=at.isoformat(),
                 anonymous_id=None, customer_id=name, items=[item])  # fmt: skip


def wishlisted(name: str, at: datetime, *product_ids: str) -> dict:
    return event("wishlist.updated", event_id=f"wish-{name}-{at:%H%M}", occurred_at=at.isoformat(), customer_id=name,
                 items=[{"product_id": p} for p in product_ids])  # fmt: skip


def emails_to(emulation, address: str) -> list[str]:
    return [m.raw_data for m in emulation.sent_emails() if address in m.raw_data]


def test_a_product_back_in_stock_e_mails_its_viewers_and_carters_once_naming_it_and_nobody_who_opted_out(
    emulation, campaigns
):
    viewer, carter, refuser = (treated(campaigns, "back-in-stock", p) for p in ("cus_v", "cus_c", "cus_r"))
    # Given a serum sold out, and customers who looked at it or put it in the cart meanwhile
    put(emulation, product_event(event_id="sold-out", occurred_at=T0.isoformat(), availability="out_of_stock"))
    put(
        emulation,
        *customer(viewer, "vi@example.org", T0),
        *customer(carter, "ca@example.org", T0),
        *opted_out(refuser, "re@example.org", T0),
    )
    soon = T0 + timedelta(minutes=5)
    put(emulation, viewed(viewer, "sku-001", soon), carted(carter, "sku-001", soon), viewed(refuser, "sku-001", soon))
    emulation.drain()
    # When it comes back in stock
    back = T0 + timedelta(hours=1)
    emulation.advance(back)
    put(emulation, product_event(event_id="back", occurred_at=back.isoformat()))
    emulation.drain()
    emulation.advance(back + timedelta(minutes=5))
    # Then each interested customer who may hear from the shop gets one e-mail naming it
    for address in ("vi@example.org", "ca@example.org"):
        [mail] = emails_to(emulation, address)
        assert "Hydrating serum is back in stock" in mail
        assert "https://shop.example/products/hydrating-serum?" in mail.replace("=\n", "")
    assert emails_to(emulation, "re@example.org") == []
    made = {d["profile_key"]: d for d in decisions(emulation)}
    assert (made[f"c:{viewer}"]["trigger"], made[f"c:{viewer}"]["campaign_id"]) == (BACK, "back-in-stock")
    assert f"c:{refuser}" not in made  # no channel may reach them: the change waits on the profile, decide is not woken
    # And the same state sent again (a producer's retry) sends nothing more
    put(emulation, product_event(event_id="back-again", occurred_at=back.isoformat()))
    emulation.drain()
    emulation.advance(back + timedelta(minutes=15))
    assert len(emulation.sent_emails()) == 2 and len(decisions(emulation)) == 2
    key, found = from_table(emulation.output("TableName"), viewer)
    story = explain(key, found)
    assert BACK in story and "SEND back-in-stock/back by email" in story


def test_a_price_drop_e_mails_those_who_carted_it_once_after_its_delay_and_nobody_who_only_looked_or_opted_out(
    emulation, campaigns
):
    buyer, looker, refuser = (treated(campaigns, "price-drop", p) for p in ("cus_b", "cus_l", "cus_o"))
    mask = {"product_id": "sku-002", "name": "Clay mask", "url": "https://shop.example/products/clay-mask",
            "image_url": "https://shop.example/images/clay-mask.jpg", "price": "40.00"}  # fmt: skip
    put(emulation, product_event(event_id="mask-1", occurred_at=T0.isoformat(), **mask))
    put(
        emulation,
        *customer(buyer, "bu@example.org", T0),
        *customer(looker, "lo@example.org", T0),
        *opted_out(refuser, "op@example.org", T0),
    )
    soon = T0 + timedelta(minutes=5)
    put(emulation, carted(buyer, "sku-002", soon), viewed(looker, "sku-002", soon), carted(refuser, "sku-002", soon))
    emulation.drain()
    # A 10% cut is below the campaign's 15%: nobody is even looked up
    emulation.advance(T0 + timedelta(minutes=30))
    put(emulation, product_event(event_id="mask-2", occurred_at=(T0 + timedelta(minutes=30)).isoformat(),
                                 **(mask | {"price": "36.00"})))  # fmt: skip
    emulation.drain()
    ingest = next(f for f in emulation.functions.values() if f.name == "ingest")
    assert ingest.aws_calls.get("sqs.SendMessageBatch", 0) == 0
    # When it drops again, to 30.00: 16.6% below its last price
    dropped = T0 + timedelta(hours=1)
    emulation.advance(dropped)
    put(emulation, product_event(event_id="mask-3", occurred_at=dropped.isoformat(), **(mask | {"price": "30.00"})))
    emulation.drain()
    emulation.advance(dropped + timedelta(minutes=25))
    assert emulation.sent_emails() == []  # the campaign waits 30 minutes
    emulation.advance(dropped + timedelta(minutes=35))
    # Then the customer who carted it gets one e-mail naming it at its new price
    [mail] = emails_to(emulation, "bu@example.org")
    assert "Clay mask is now 16% cheaper" in mail and "was 36.00 and is now 30.00 USD" in mail
    assert emails_to(emulation, "lo@example.org") == emails_to(emulation, "op@example.org") == []
    made = {d["profile_key"]: d for d in decisions(emulation)}
    assert made[f"c:{buyer}"]["trigger"] == DROP
    reasons = {c["reason"] for c in made[f"c:{looker}"]["candidates"]}
    assert reasons == {"interest: viewed, never put in the cart"}
    # And the drop sent again sends nothing more
    put(emulation, product_event(event_id="mask-3-again", occurred_at=dropped.isoformat(),
                                 **(mask | {"price": "30.00"})))  # fmt: skip
    emulation.drain()
    emulation.advance(dropped + timedelta(hours=1))
    assert len(emulation.sent_emails()) == 1


def test_a_product_back_in_stock_e_mails_who_still_wishes_for_it_once_and_nobody_who_took_it_off(emulation, campaigns):
    keeper, dropper, late = (treated(campaigns, "back-in-stock", p) for p in ("cus_w", "cus_d", "cus_l"))
    # Given a serum sold out, on three customers' wishlists (and a wishlist the bus's rule routes but ingest refuses)
    put(emulation, product_event(event_id="sold-out", occurred_at=T0.isoformat(), availability="out_of_stock"))
    put(
        emulation,
        *customer(keeper, "ke@example.org", T0),
        *customer(dropper, "dr@example.org", T0),
        *customer(late, "la@example.org", T0),
    )
    soon = T0 + timedelta(minutes=5)
    broken = wishlisted(keeper, soon)
    broken["detail"] |= {"event_id": "wish-broken", "items": "sku-001"}
    put(emulation, *(wishlisted(n, soon, "sku-001", "sku-002") for n in (keeper, dropper, late)), broken)
    emulation.drain()
    # When one takes it off, it comes back in stock, and another takes it off before decide answers
    emulation.advance(T0 + timedelta(minutes=20))
    put(emulation, wishlisted(dropper, T0 + timedelta(minutes=20), "sku-002"))
    emulation.drain()
    back = T0 + timedelta(hours=1)
    emulation.advance(back)
    put(emulation, product_event(event_id="back", occurred_at=back.isoformat()))
    emulation.drain()
    put(emulation, wishlisted(late, back, "sku-002"))
    emulation.drain()
    emulation.advance(back + timedelta(minutes=5))
    # Then only the one who still wishes for it gets an e-mail, once, naming it
    [mail] = emails_to(emulation, "ke@example.org")
    assert "Hydrating serum is back in stock" in mail
    assert emails_to(emulation, "dr@example.org") == emails_to(emulation, "la@example.org") == []
    made = {d["profile_key"]: d for d in decisions(emulation)}
    assert f"c:{dropper}" not in made  # its entry in the interest index went with the wish: nobody looked them up
    assert {c["reason"] for c in made[f"c:{late}"]["candidates"]} == {"interest: taken off the wishlist"}
    story = explain(*from_table(emulation.output("TableName"), late))
    assert "interest: taken off the wishlist" in story
    [rejected] = [m for messages in dead_letters(emulation).values() for m in messages]
    assert rejected["MessageAttributes"]["reason"]["StringValue"] == "invalid_detail"
    assert json.loads(rejected["Body"])["detail"]["items"] == "sku-001"  # kept whole, for a replay


def test_ingest_learns_what_to_record_and_watch_from_the_synthesized_stack(emulation):
    env = emulation.environment("ingest")
    assert json.loads(env["TRIGGER_DELAY_SECONDS"]) == {BACK: 0, DROP: 1800}
    assert json.loads(env["CATALOG_WATCH"]) == {"back_in_stock": True, "interest": "view", "min_drop_percent": "15"}
    [events_queue] = [url for logical_id, url in emulation.physical.items() if logical_id.startswith("IngestEvents")
                      and "DeadLetters" not in logical_id and url.startswith("http")]  # fmt: skip
    assert env["EVENTS_QUEUE_URL"] == events_queue
