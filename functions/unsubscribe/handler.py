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
from nextbest.core.tokens import verify
from nextbest.unsubscribe.service import unsubscribe

settings = UnsubscribeSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
app = LambdaFunctionUrlResolver()
PAGE = "<!doctype html><meta charset=utf-8><title>Unsubscribe</title><body style='font-family:sans-serif'>{}"


def _page(status: int, body: str) -> Response:
    return Response(status_code=status, content_type="text/html; charset=utf-8", body=PAGE.format(body))


def _decision() -> str | None:
    token = app.current_event.get_query_string_value("t", "") or ""
    return verify(signing_keys(settings.signing_secret_arn), token)


@app.get("/")
def confirm() -> Response:
    if _decision() is None:
        return _page(400, "<p>This unsubscribe link is not valid.</p>")
    token = escape(app.current_event.get_query_string_value("t", "") or "")
    return _page(200, f"<form method=post action='?t={token}'><button>Unsubscribe from these e-mails</button></form>")


@app.post("/")
def one_click() -> Response:
    decision_id = _decision()
    if decision_id is None:
        return _page(400, "<p>This unsubscribe link is not valid.</p>")
    outcome = unsubscribe(store, decision_id, clock.now())
    metrics.add_metric(name="Unsubscribed", unit=MetricUnit.Count, value=1)
    logger.info("unsubscribe", extra={"decision_id": decision_id, "outcome": outcome})
    return _page(200, "<p>You will not receive these e-mails any more.</p>")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
