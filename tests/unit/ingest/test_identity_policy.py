"""The identity policy (issue 13, "nothing sent that shouldn't be"): only the shop's own ``customer_id`` proves who
someone is. Claims (a cookie, an address typed in a form) may link and fill, never take over a known customer's
contact details; two customers are never merged; a consent covers the address it was given for."""

from datetime import timedelta

from nextbest.core.events import ConsentUpdated, CustomerIdentified, ProductViewed
from nextbest.deliver.service import deliver
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import DELAYS, abandoned_cart, known_customer
from tests.conftest import T0
from tests.unit.handlers.harness import Sender

ANN, EVE = "ann@example.org", "eve@example.org"


def identified(event_id: str, minutes: int, **ids: str) -> CustomerIdentified:
    return CustomerIdentified(event_id=event_id, occurred_at=T0 + timedelta(minutes=minutes), **ids)


def consent(event_id: str, minutes: int, channel: str = "email", granted: bool = True, **ids: str) -> ConsentUpdated:
    at = T0 + timedelta(minutes=minutes)
    return ConsentUpdated(event_id=event_id, occurred_at=at, channel=channel, granted=granted, **ids)


def test_given_a_cookie_linked_to_a_known_customer_then_another_address_on_it_does_not_receive_her_reminder():
    """The finding: cookie + her e-mail, then the same cookie + another address, re-pointed her e-mail."""
    store = MemoryStore()
    known_customer(store, {"email": True}, email=ANN, first_name="Ann")
    ingest(store, "customer.identified", identified("l1", 1, anonymous_id="ck-1", email=ANN), DELAYS)
    ingest(store, "customer.identified", identified("l2", 2, anonymous_id="ck-1", email=EVE), DELAYS)

    decision = abandoned_cart(store, {"email": True}, email=ANN, first_name="Ann")
    email = Sender()
    assert deliver(store, decision.decision_id, email, Sender()).outcome == "sent"

    assert [to for to, _ in email.sent] == [ANN]
    profile = store.profile("c:cus_1")
    assert profile.email == ANN and profile.has_consent("email")


def test_given_a_grant_for_another_address_on_her_profile_then_nothing_goes_to_that_address():
    """The claimed address is linked (events naming it reach her profile), and its grant is the newest statement:
    it covers that address only, which she is never sent to. She gets nothing until she consents again (an
    opt-out by whoever types her address has the same effect): the policy fails closed."""
    store = MemoryStore()
    known_customer(store, {"email": True}, email=ANN)
    ingest(store, "customer.identified", identified("l1", 1, anonymous_id="ck-1", email=ANN), DELAYS)
    ingest(store, "customer.identified", identified("l2", 2, anonymous_id="ck-1", email=EVE), DELAYS)
    ingest(store, "consent.updated", consent("k-eve", 3, email=EVE), DELAYS)

    decision = abandoned_cart(store, {"email": True}, email=ANN)

    assert decision.action == "none" and store.profile("e:eve@example.org").email == ANN


def test_given_an_unverified_address_then_a_known_customer_without_one_does_not_get_it():
    store = MemoryStore()
    known_customer(store, {"email": True}, phone="+14155550100")
    ingest(store, "customer.identified", identified("l1", 1, phone="+14155550100", email=EVE), DELAYS)
    ingest(store, "consent.updated", consent("k-eve", 2, email=EVE), DELAYS)
    assert store.profile("c:cus_1").email is None


def test_given_an_unverified_device_token_then_a_known_customer_gets_no_push_on_it():
    store = MemoryStore()
    known_customer(store, {"push": True}, email=ANN)
    ingest(store, "customer.identified", identified("l1", 1, email=ANN, device_token="apns-token-attacker"), DELAYS)
    assert store.profile("c:cus_1").push_tokens == []
    ingest(
        store, "customer.identified", identified("l2", 2, customer_id="cus_1", device_token="apns-token-ann"), DELAYS
    )
    assert store.profile("c:cus_1").push_tokens == ["apns-token-ann"]


def test_given_the_customer_id_then_the_address_changes_but_the_old_consent_does_not_follow_it():
    store = MemoryStore()
    known_customer(store, {"email": True, "sms": True}, email=ANN, phone="+14155550100")
    ingest(store, "customer.identified", identified("v2", 5, customer_id="cus_1", email=EVE), DELAYS)
    ingest(store, "customer.identified", identified("v3", 5, customer_id="cus_1", phone="+14155550111"), DELAYS)
    profile = store.profile("c:cus_1")
    assert profile.email == EVE and not profile.has_consent("email")
    assert profile.phone == "+14155550111" and not profile.has_consent("sms")

    ingest(store, "consent.updated", consent("k2", 6, customer_id="cus_1", email=EVE), DELAYS)
    assert store.profile("c:cus_1").has_consent("email")


def test_given_the_same_address_sent_again_at_every_login_then_its_consent_stays():
    store = MemoryStore()
    known_customer(store, {"email": True}, email=ANN)
    ingest(store, "customer.identified", identified("v2", 60, customer_id="cus_1", email=ANN), DELAYS)
    assert store.profile("c:cus_1").has_consent("email")


def test_an_anonymous_profile_keeps_the_first_address_it_was_given():
    store = MemoryStore()
    ingest(store, "consent.updated", consent("k1", 1, anonymous_id="ck-1", email=ANN), DELAYS)
    ingest(store, "customer.identified", identified("l2", 2, anonymous_id="ck-1", email=EVE), DELAYS)
    profile = store.profile("a:ck-1")
    assert profile.email == ANN and profile.has_consent("email")


def test_a_cookie_seen_with_two_customers_stays_with_the_first_and_the_second_is_applied_alone():
    store = MemoryStore()
    known_customer(store, {"email": True}, email=ANN)
    ingest(store, "customer.identified", identified("l1", 1, customer_id="cus_1", anonymous_id="shared"), DELAYS)
    second = ingest(
        store, "customer.identified", identified("l2", 2, customer_id="cus_2", anonymous_id="shared", email=EVE), DELAYS
    )

    assert second.outcome == "applied" and second.profile_key == "c:cus_2" and second.conflicts == 1
    ann, eve = store.profile("c:cus_1"), store.profile("c:cus_2")
    assert ann.key == "c:cus_1" and ann.email == ANN and "a:shared" in ann.identifiers
    assert eve.key == "c:cus_2" and eve.email == EVE and "a:shared" not in eve.identifiers
    assert store.profile("a:shared").key == "c:cus_1"


def test_an_event_whose_identifiers_lead_to_two_customers_goes_to_its_strongest_identifier():
    store = MemoryStore()
    ingest(store, "customer.identified", identified("i1", 0, customer_id="cus_1", email=ANN), DELAYS)
    ingest(store, "customer.identified", identified("i2", 0, customer_id="cus_2", email=EVE), DELAYS)
    ingest(store, "customer.identified", identified("l1", 1, customer_id="cus_1", anonymous_id="ck-1"), DELAYS)
    view = ProductViewed(event_id="v", occurred_at=T0 + timedelta(minutes=2), anonymous_id="ck-1", email=EVE,
                         product_id="sku-1")  # fmt: skip

    result = ingest(store, "product.viewed", view, DELAYS)

    assert result.profile_key == "c:cus_2" and result.conflicts == 1
    assert [v.product_id for v in store.profile("c:cus_2").views] == ["sku-1"]
    assert store.profile("c:cus_1").views == [] and store.profile("a:ck-1").key == "c:cus_1"
