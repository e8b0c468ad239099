"""λ unsubscribe in process, behind its function URL: a signed link's POST withdraws e-mail consent, its GET only
asks, a link we did not sign gets a 400 page, a link past its lifetime a 410 page, and a link older than the
customer's re-subscription leaves that newer choice alone."""

import base64
import hashlib
import hmac
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from nextbest.aws.senders import SesEmail
from nextbest.core.events import ConsentUpdated
from nextbest.core.settings import UnsubscribeSettings
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import DELAYS, DUE, abandoned_cart
from tests.unit.handlers.harness import Context, arn, load, url_request

KEY = b"test-signing-key"
SENT = DUE + timedelta(minutes=1)
"""When deliver sends the cart reminder decided at DUE, and signs its link."""
EXPIRED = timedelta(days=91)
"""Past the links' 90-day lifetime (``nextbest.core.tokens.LIFETIME``)."""

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")  # a page that changes nothing counts nothing


@pytest.fixture
def unsubscribe(monkeypatch, now):
    module = load("unsubscribe", UnsubscribeSettings, monkeypatch, signing_secret_arn=arn("secretsmanager", "secret:k"))
    module.store = MemoryStore()
    module.signing_keys = lambda secret_arn: [KEY]  # Secrets Manager's current value (no rotation yet)
    return module


def emailed(unsubscribe, now) -> str:
    """The token in the List-Unsubscribe link of the e-mail deliver sends, at SENT, to a customer who accepts
    e-mail (signed by deliver's own SES sender)."""
    decision = abandoned_cart(unsubscribe.store, {"email": True}, email="ann@example.org")
    now.set(SENT)
    link = SesEmail("shop@example.org", "nextbest", "https://unsubscribe.example/", lambda: KEY).unsubscribe_link(
        decision
    )
    return parse_qs(urlsplit(link).query)["t"][0]


def old_format(unsubscribe, key: bytes = KEY) -> str:
    """A token as deliver signed them before they carried their issue time (the decision id and an HMAC of it),
    for the e-mail decided at DUE and sent at SENT: such links are in customers' inboxes."""
    decision = abandoned_cart(unsubscribe.store, {"email": True}, email="ann@example.org")
    mac = hmac.new(key, decision.decision_id.encode(), hashlib.sha256).digest()[:18]
    return f"{decision.decision_id}.{base64.urlsafe_b64encode(mac).decode()}"


def invoke(unsubscribe, method: str, token: str) -> dict:
    return unsubscribe.handler(url_request(method, {"t": token}), Context("unsubscribe"))


def email_consent(unsubscribe):
    return unsubscribe.store.profile("c:cus_1").consent["email"]


def resubscribe(unsubscribe, at) -> None:
    """The customer subscribes to e-mail again on the shop's preference centre."""
    event = ConsentUpdated(event_id="again", occurred_at=at, customer_id="cus_1", channel="email", granted=True)
    ingest(unsubscribe.store, "consent.updated", event, DELAYS)


def test_given_a_one_click_post_with_a_signed_token_then_email_consent_is_withdrawn(unsubscribe, now):
    token = emailed(unsubscribe, now)

    response = invoke(unsubscribe, "POST", token)

    assert response["statusCode"] == 200 and response["headers"]["Content-Type"].startswith("text/html")
    consent = email_consent(unsubscribe)
    assert (consent.granted, consent.source) == (False, "list_unsubscribe")


def test_given_a_link_30_days_after_the_send_then_it_still_unsubscribes(unsubscribe, now):
    # Given the e-mail's link, and the 30 days CAN-SPAM requires an opt-out to keep working after a send
    token = emailed(unsubscribe, now)
    now.set(SENT + timedelta(days=30))

    # When it is clicked then, then e-mail consent is withdrawn
    response = invoke(unsubscribe, "POST", token)

    assert response["statusCode"] == 200 and "not receive" in response["body"]
    assert not email_consent(unsubscribe).granted


def test_given_a_get_of_the_link_then_it_only_asks_for_confirmation(unsubscribe, now):
    token = emailed(unsubscribe, now)

    response = invoke(unsubscribe, "GET", token)

    assert response["statusCode"] == 200 and "<form method=post" in response["body"]
    assert email_consent(unsubscribe).granted  # a link scanner's GET unsubscribes no one


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_given_a_link_past_its_lifetime_then_the_page_says_it_expired_and_consent_is_unchanged(
    unsubscribe, now, method
):
    token = emailed(unsubscribe, now)
    now.set(SENT + EXPIRED)

    response = invoke(unsubscribe, method, token)

    assert response["statusCode"] == 410 and "expired" in response["body"] and "<form" not in response["body"]
    assert email_consent(unsubscribe).granted


def test_given_a_re_subscription_after_the_email_then_its_link_leaves_the_newer_choice_alone(unsubscribe, now):
    # Given a customer who unsubscribed with the e-mail's link, then subscribed again the next day
    token = emailed(unsubscribe, now)
    now.set(SENT + timedelta(days=1))
    assert invoke(unsubscribe, "POST", token)["statusCode"] == 200
    assert not email_consent(unsubscribe).granted
    resubscribe(unsubscribe, SENT + timedelta(days=2))

    # When the old e-mail's link is clicked again
    now.set(SENT + timedelta(days=3))
    response = invoke(unsubscribe, "POST", token)

    # Then the newest choice stands, and the page says so
    assert response["statusCode"] == 200 and "subscribed again" in response["body"]
    consent = email_consent(unsubscribe)
    assert (consent.granted, consent.source) == (True, "preference_center")


def test_given_a_grant_repeated_after_the_email_then_its_link_still_unsubscribes(unsubscribe, now):
    # Given the e-mail's link, and the shop stating the customer's unchanged consent again (a CRM sync, a ticked
    # box at checkout): not a change of mind, so the link must keep working for its 30 days at least
    token = emailed(unsubscribe, now)
    resubscribe(unsubscribe, SENT + timedelta(days=1))
    now.set(SENT + timedelta(days=2))

    response = invoke(unsubscribe, "POST", token)

    assert response["statusCode"] == 200 and "not receive" in response["body"]
    assert not email_consent(unsubscribe).granted


def test_given_an_old_format_link_from_an_inbox_then_it_still_unsubscribes_within_the_lifetime(unsubscribe, now):
    token = old_format(unsubscribe)
    now.set(SENT + timedelta(days=30))

    response = invoke(unsubscribe, "POST", token)

    assert response["statusCode"] == 200 and "not receive" in response["body"]
    assert not email_consent(unsubscribe).granted


def test_given_an_old_format_link_then_its_lifetime_and_a_later_re_subscription_count_from_its_decision(
    unsubscribe, now
):
    # Given an old-format link (no issue time: its decision's stands in for it), used to unsubscribe, and a
    # re-subscription the next day
    token = old_format(unsubscribe)
    now.set(SENT + timedelta(days=1))
    assert invoke(unsubscribe, "POST", token)["statusCode"] == 200
    resubscribe(unsubscribe, SENT + timedelta(days=2))
    now.set(SENT + timedelta(days=3))

    # When it is clicked after the re-subscription, then it leaves that newer choice alone
    response = invoke(unsubscribe, "POST", token)
    assert response["statusCode"] == 200 and "subscribed again" in response["body"]
    assert email_consent(unsubscribe).granted

    # When it is clicked past the lifetime, then the page says it expired
    now.set(SENT + EXPIRED)
    response = invoke(unsubscribe, "POST", token)
    assert response["statusCode"] == 410 and "expired" in response["body"]
    assert email_consent(unsubscribe).granted


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-4] + "AAAA",
        lambda token: token.partition(".")[0],
        lambda token: "",
        lambda token: token[:-1] + "é",
    ],
    ids=["altered", "unsigned", "empty", "non-ascii"],
)
def test_given_a_token_we_did_not_sign_then_the_page_says_so_with_a_400(unsubscribe, now, forge):
    token = emailed(unsubscribe, now)

    response = invoke(unsubscribe, "POST", forge(token))

    assert response["statusCode"] == 400 and "not valid" in response["body"]
    assert email_consent(unsubscribe).granted
