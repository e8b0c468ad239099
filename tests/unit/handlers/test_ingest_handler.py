"""λ ingest in process: the shop's events become profiles, with their triggers in the due index; a bad one goes
to the DLQ alone."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from nextbest.core.due import due_shard
from nextbest.core.interest import INTEREST_SHARDS, interest_shard
from nextbest.core.profiles import Profile
from nextbest.core.settings import IngestSettings
from nextbest.core.triggers import Watch
from nextbest.memory import MemoryStore

from tests.conftest import EVENTS, T0
from tests.unit.handlers.harness import (
    Context,
    DeadLetters,
    Outbox,
    Redelivery,
    arn,
    failures,
    load,
    queue_url,
    sqs_event,
    sqs_record,
)

QUEUE = "nextbest-events"


def deployed(monkeypatch, now, **settings):
    """ingest's handler as deployed with ``settings``, on the in-memory store and queues."""
    module = load(
        "ingest",
        IngestSettings,
        monkeypatch,
        dead_letter_queue_url=queue_url(f"{QUEUE}-dlq"),
        erasure_secret_arn=arn("secretsmanager", "secret:erasure"),
        events_queue_url=queue_url(QUEUE),
        **settings,
    )
    module.store, module.dead_letters, module.events_queue = MemoryStore(), DeadLetters(), Outbox()
    module.redelivery = Redelivery()
    now.advance(timedelta(minutes=5))  # the samples happen between 09:00 and 09:02
    return module


@pytest.fixture
def ingest(monkeypatch, now):
    return deployed(monkeypatch, now, trigger_delay_seconds={"cart_abandoned": 3600})


def invoke(ingest, *bodies: str, receives: int = 1) -> dict:
    records = (sqs_record(body, QUEUE, receives) for body in bodies)
    return ingest.handler(sqs_event(*records), Context("ingest"))


def sample(name: str) -> str:
    return (EVENTS / name).read_text()


def event(name: str, drop: tuple[str, ...] = (), **detail: object) -> str:
    """A sample event with some of its detail changed (``drop``: fields removed)."""
    body = json.loads(sample(f"{name}.json"))
    body["detail"] = {k: v for k, v in body["detail"].items() if k not in drop} | detail
    return json.dumps(body)


def due(ingest, key: str) -> list[str]:
    """The profiles the due index holds for ``key``'s shard over the first hours (what the polls would find)."""
    return ingest.store.due(due_shard(key), T0, T0 + timedelta(hours=3))


def test_given_a_cart_event_then_a_profile_holds_the_cart_and_its_trigger_indexed_once_someone_may_be_sent_it(ingest):
    response = invoke(ingest, sample("cart.updated.json"))

    assert failures(response) == []
    anonymous = ingest.store.profile("a:anon-1")
    assert [item.product_id for item in anonymous.cart.items] == ["sku-001"]
    assert anonymous.triggers["cart_abandoned"] == T0 + timedelta(hours=1)
    assert ingest.store.index_times["a:anon-1"] is None  # a cookie: no one to send it to, decide is not woken

    assert failures(invoke(ingest, sample("customer.identified.json"), sample("consent.updated.json"))) == []
    assert ingest.store.index_times["c:cus_5"] == T0 + timedelta(hours=1)  # signed in and consented: due


def test_given_a_malformed_record_between_valid_ones_then_it_alone_is_dead_lettered_with_its_reason(ingest):
    response = invoke(ingest, sample("customer.identified.json"), "{not json", sample("cart.updated.json"))

    assert failures(response) == []  # the rejected record is settled too: SQS must not retry it
    assert ingest.dead_letters.rejected == [("{not json", "bad_json", QUEUE)]
    profile = ingest.store.profile("a:anon-1")
    assert profile.key == "c:cus_5" and profile.email == "ann@example.org" and profile.cart is not None


def test_given_product_events_among_a_customer_s_then_the_catalog_takes_them_and_a_bad_one_is_dead_lettered(ingest):
    no_price = event("product.updated", drop=("price",), event_id="ev-no-price", product_id="sku-002")
    response = invoke(ingest, sample("cart.updated.json"), sample("product.updated.json"), no_price)

    assert failures(response) == []
    assert ingest.dead_letters.reasons == ["invalid_detail"]
    assert list(ingest.store.products(["sku-001", "sku-002"])) == ["sku-001"]
    assert ingest.store.profile("a:anon-1").cart is not None  # the customer's event in the same batch is applied


def test_given_an_event_delivered_twice_then_it_is_applied_once(ingest):
    for _ in range(2):
        assert failures(invoke(ingest, sample("cart.updated.json"))) == []

    assert ingest.store.writes == 1 and ingest.store.profile("a:anon-1").version == 1
    assert ingest.store.profile("a:anon-1").triggers == {"cart_abandoned": T0 + timedelta(hours=1)}


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_given_a_date_beyond_utc_among_an_opt_out_and_an_erasure_then_only_it_is_dead_lettered(ingest, occurred_at):
    ingest.store.save(Profile(key="c:gone", identifiers=["c:gone"]), [], ["c:gone"])
    bad = sample("cart.updated.json").replace('"2026-11-02T09:00:00Z"', f'"{occurred_at}"')
    opt_out = sample("consent.updated.json").replace('"granted": true', '"granted": false')
    erasure = (
        sample("customer.erased.json")
        .replace('"cus_5"', '"gone"')
        .replace("2026-11-02T09:40:00Z", "2026-11-02T09:04:00Z")
    )
    assert occurred_at in bad and '"granted": false' in opt_out and '"gone"' in erasure

    response = invoke(ingest, sample("customer.identified.json"), bad, opt_out, erasure)

    assert failures(response) == []
    assert [(body, reason) for body, reason, _ in ingest.dead_letters.rejected] == [(bad, "invalid_detail")]
    assert not ingest.store.profile("c:cus_5").has_consent("email")
    assert ingest.store.profile("c:gone") is None


def test_given_a_browser_shared_by_two_customers_then_the_second_login_is_applied_alone_and_counted(ingest, capsys):
    first = sample("customer.identified.json")
    second = event("customer.identified", event_id="ev-identify-2", customer_id="cus_6", email="bob@example.org")

    response = invoke(ingest, first, second)

    assert failures(response) == [] and ingest.dead_letters.rejected == []
    assert ingest.store.profile("a:anon-1").key == "c:cus_5"  # the cookie stays with the first customer
    bob = ingest.store.profile("c:cus_6")
    assert bob.email == "bob@example.org" and "a:anon-1" not in bob.identifiers
    assert ingest.store.profile("c:cus_5").email == "ann@example.org"
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["IdentityConflicts"] == [1.0]  # her cookie and phone number, which his event also carried


def test_given_a_cart_under_a_key_merged_away_then_only_the_surviving_profile_is_due_and_erasure_takes_it_out(ingest):
    """A cart left under an e-mail alone; the customer then signs in and the profile moves to their customer id.
    The redirect left at the e-mail carries no index time, so nothing is due under it (no orphan alarm)."""
    cart = event("cart.updated", drop=("anonymous_id",), email="zoe@example.org")
    identified = event("customer.identified", drop=("anonymous_id", "phone"), email="zoe@example.org")
    consent = event(
        "consent.updated", drop=("customer_id",), email="zoe@example.org", occurred_at="2026-11-02T08:59:00Z"
    )
    assert failures(invoke(ingest, consent, cart)) == []
    assert due(ingest, "e:zoe@example.org") == ["e:zoe@example.org"]
    assert failures(invoke(ingest, identified)) == []
    assert "e:zoe@example.org" not in due(ingest, "e:zoe@example.org") and due(ingest, "c:cus_5") == ["c:cus_5"]

    assert failures(invoke(ingest, event("customer.erased", occurred_at="2026-11-02T09:04:00Z"))) == []

    assert due(ingest, "c:cus_5") == [] and due(ingest, "e:zoe@example.org") == []


class PrefetchFails(MemoryStore):
    """A store whose batched read of the batch's identities fails (an unretried 5xx)."""

    def prefetch_identities(self, keys):
        raise ConnectionError("BatchGetItem timed out")


def test_given_the_batched_identity_read_failing_then_each_event_is_still_applied(ingest):
    ingest.store = PrefetchFails()

    response = invoke(ingest, sample("customer.identified.json"), sample("cart.updated.json"))

    assert failures(response) == [] and ingest.dead_letters.rejected == []
    assert ingest.store.profile("a:anon-1").cart is not None


@pytest.fixture
def watching(monkeypatch, now):
    """ingest as deployed with an approved back-in-stock campaign answering viewers."""
    return deployed(
        monkeypatch,
        now,
        trigger_delay_seconds={"catalog:back_in_stock+0m": 0},
        catalog_watch=Watch(interest="view", back_in_stock=True),
    )


def test_given_a_catalog_campaign_then_a_product_back_in_stock_reaches_its_viewer_through_ingest_s_own_queue(watching):
    # Given a shopper who viewed a serum that was sold out
    invoke(watching, event("product.updated", availability="out_of_stock"), sample("product.viewed.json"))
    shard = interest_shard("a:anon-1")
    assert watching.store.interested("sku-001", shard, None, 10, T0).profile_keys == ["a:anon-1"]
    assert watching.events_queue.sent == []
    # When it is back in stock: a command per shard of the index on ingest's own queue
    invoke(watching, event("product.updated", event_id="back", occurred_at="2026-11-02T09:03:00Z"))
    fan_outs = [json.dumps(body) for body in watching.events_queue.bodies]
    assert len(fan_outs) == INTEREST_SHARDS and watching.events_queue.batches == [INTEREST_SHARDS]
    # Then the queue hands them back ten at a time; the shopper's shard queues one event for the shopper
    watching.events_queue.sent.clear()
    assert failures(invoke(watching, *fan_outs[:10])) == failures(invoke(watching, *fan_outs[10:])) == []
    [noticed] = [json.dumps(body) for body in watching.events_queue.bodies]
    # and that event, delivered twice, arms the shopper's back-in-stock trigger once
    for _ in range(2):
        assert failures(invoke(watching, noticed)) == []
    profile = watching.store.profile("a:anon-1")
    assert profile.triggers["catalog:back_in_stock+0m"] == datetime(2026, 11, 2, 9, 3, tzinfo=UTC)
    assert profile.version == 2 and watching.dead_letters.rejected == []  # the view, then the change, once


def test_given_json_that_is_neither_an_event_nor_a_command_then_it_is_dead_lettered_as_a_bad_envelope(watching):
    response = invoke(watching, json.dumps({"fan_out": {"kind": "sold_out"}, "shard": 1}), '{"hello": "world"}')

    assert failures(response) == []
    assert watching.dead_letters.reasons == ["bad_envelope", "bad_envelope"]
