"""λ unsubscribe: the one-click endpoint behind every e-mail's List-Unsubscribe header (a function URL)."""

from html import escape
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws.secrets import signing_keys
from nextbest.aws.store import Store
from nextbest.core import clock
from nextbest.core.settings import UnsubscribeSettings
from nextbest.core.tokens import LIFETIME, SignedLink, expired, verify
from nextbest.unsubscribe.service import Outcome, unsubscribe

settings = UnsubscribeSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
app = LambdaFunctionUrlResolver()
PAGE = "<!doctype html><meta charset=utf-8><title>Unsubscribe</title><body style='font-family:sans-serif'>{}"
INVALID = (400, "<p>This unsubscribe link is not valid.</p>")
PAGES: dict[Outcome, tuple[int, str]] = {
    "unsubscribed": (200, "<p>You will not receive these e-mails any more.</p>"),
    "unknown": (200, "<p>You will not receive these e-mails any more.</p>"),
    "resubscribed": (
        200,
        "<p>You subscribed again to these e-mails after this one was sent, so this older link has not unsubscribed"
        " you: your newest choice stands. To stop them, use the link in a newer e-mail from us.</p>",
    ),
    "expired": (
        410,
        f"<p>This unsubscribe link has expired: links work for {LIFETIME.days} days after their e-mail was sent."
        " To stop these e-mails, use the link in a newer e-mail from us.</p>",
    ),
}


def _page(status: int, body: str) -> Response:
    return Response(status_code=status, content_type="text/html; charset=utf-8", body=PAGE.format(body))


def _link() -> SignedLink | None:
    token = app.current_event.get_query_string_value("t", "") or ""
    return verify(signing_keys(settings.signing_secret_arn), token)


@app.get("/")
def confirm() -> Response:
    link = _link()
    if link is None:
        return _page(*INVALID)
    if link.issued_at is not None and expired(link.issued_at, clock.now()):
        return _page(*PAGES["expired"])
    token = escape(app.current_event.get_query_string_value("t", "") or "")
    return _page(200, f"<form method=post action='?t={token}'><button>Unsubscribe from these e-mails</button></form>")


@app.post("/")
def one_click() -> Response:
    link = _link()
    if link is None:
        return _page(*INVALID)
    outcome = unsubscribe(store, link, clock.now())
    if outcome == "unsubscribed":
        metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    logger.info("unsubscribe", extra={"decision_id": link.decision_id, "outcome": outcome})
    return _page(*PAGES[outcome])


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
