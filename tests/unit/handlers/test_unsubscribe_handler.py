"""λ unsubscribe in process, behind its function URL: a signed link's POST withdraws e-mail consent, its GET only
asks, and a link we did not sign gets a 400 page."""

import pytest
from nextbest.core.settings import UnsubscribeSettings
from nextbest.core.tokens import sign
from nextbest.memory import MemoryStore

from tests.builders import abandoned_cart
from tests.unit.handlers.harness import Context, arn, load, url_request

KEY = b"test-signing-key"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")  # a page that changes nothing counts nothing


@pytest.fixture
def unsubscribe(monkeypatch, now):
    module = load("unsubscribe", UnsubscribeSettings, monkeypatch, signing_secret_arn=arn("secretsmanager", "secret:k"))
    module.store = MemoryStore()
    module.signing_keys = lambda secret_arn: [KEY]  # Secrets Manager's current value (no rotation yet)
    return module


def emailed(unsubscribe) -> str:
    """The unsubscribe token of an e-mail sent to a customer who accepts e-mail."""
    decision = abandoned_cart(unsubscribe.store, {"email": True}, email="ann@example.org")
    return sign(KEY, decision.decision_id)


def invoke(unsubscribe, method: str, token: str) -> dict:
    return unsubscribe.handler(url_request(method, {"t": token}), Context("unsubscribe"))


def email_consent(unsubscribe):
    return unsubscribe.store.profile("c:cus_1").consent["email"]


def test_given_a_one_click_post_with_a_signed_token_then_email_consent_is_withdrawn(unsubscribe):
    token = emailed(unsubscribe)

    response = invoke(unsubscribe, "POST", token)

    assert response["statusCode"] == 200 and response["headers"]["Content-Type"].startswith("text/html")
    consent = email_consent(unsubscribe)
    assert (consent.granted, consent.source) == (False, "list_unsubscribe")


def test_given_a_get_of_the_link_then_it_only_asks_for_confirmation(unsubscribe):
    token = emailed(unsubscribe)

    response = invoke(unsubscribe, "GET", token)

    assert response["statusCode"] == 200 and "<form method=post" in response["body"]
    assert email_consent(unsubscribe).granted  # a link scanner's GET unsubscribes no one


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
def test_given_a_token_we_did_not_sign_then_the_page_says_so_with_a_400(unsubscribe, forge):
    token = emailed(unsubscribe)

    response = invoke(unsubscribe, "POST", forge(token))

    assert response["statusCode"] == 400 and "not valid" in response["body"]
    assert email_consent(unsubscribe).granted
