"""λ ingest: behavioural and consent events from the bus → validated → merged into profiles; the catalog's
products, and the fan-out of a change of one to the customers interested in it (messages ingest sends itself)."""

from typing import Any, TypeAlias

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws import batch, secrets
from nextbest.aws.queues import DeadLetters, Queue
from nextbest.aws.store import Store
from nextbest.core import clock
from nextbest.core.events import EventDetail, ProductUpdated, RejectedEvent, parse_event
from nextbest.core.interest import FanOut, Noticed, ingest_command
from nextbest.core.ports import Retry, pseudonym
from nextbest.core.profiles import identity_keys
from nextbest.core.settings import IngestSettings
from nextbest.ingest.service import Ingested, fan_out_page, ingest_batch, notice_change, update_product

settings = IngestSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name, erasure_key=lambda: secrets.erasure_key(settings.erasure_secret_arn))
dead_letters = DeadLetters(settings.dead_letter_queue_url)
events_queue = Queue(settings.events_queue_url)
redelivery = batch.Redelivery()
delays = settings.delays()


Parsed: TypeAlias = tuple[str, EventDetail | ProductUpdated] | FanOut | Noticed | RejectedEvent


def _parsed(body: str) -> Parsed:
    """The event (or one of ingest's own commands), or why it is rejected. Parsing is pure: an input it cannot handle
    fails the same way on every retry, so even an unexpected error is a rejection of that record (to the DLQ with a
    reason), never a failure of the batch that would take its neighbours (an opt-out among them) to the DLQ with it."""
    try:
        return parse_event(body, clock.now())
    except RejectedEvent as rejection:
        return _command(body, rejection) if rejection.reason == "bad_envelope" else rejection
    except Exception as error:
        logger.exception("event parser failed")
        return RejectedEvent("unparseable", f"{type(error).__name__} while parsing")


def _command(body: str, rejection: RejectedEvent) -> FanOut | Noticed | RejectedEvent:
    """JSON that is no bus envelope: a command ingest sent itself (the shop can put nothing else on the queue), or
    the envelope's rejection. Tried after the envelope, so the shop's events pay nothing for it."""
    try:
        return ingest_command.validate_json(body)
    except Exception:
        return rejection


def _catalogued(product: ProductUpdated) -> Ingested | Exception:
    """The catalog's write for a product event, or its error (reported for that record alone)."""
    try:
        return update_product(store, product, delays.watch, events_queue)
    except Exception as error:
        return error


def _commanded(command: FanOut | Noticed) -> Ingested | int | Exception:
    """A page of a catalog change's fan-out (how many customers it queued), or the change applied to one interested
    customer; or its error (reported for that record alone)."""
    try:
        if isinstance(command, FanOut):
            return fan_out_page(store, events_queue, command)
        return notice_change(store, command, delays)
    except Exception as error:
        return error


def _sorted(
    parsed: dict[str, Parsed],
) -> tuple[dict[str, tuple[str, EventDetail]], dict[str, ProductUpdated], dict[str, FanOut | Noticed]]:
    """The records by what they are: customers' events, the catalog's (which name no customer), and a catalog change
    on its way to the customers interested (the rejected are none of them)."""
    valid: dict[str, tuple[str, EventDetail]] = {}
    products: dict[str, ProductUpdated] = {}
    commands: dict[str, FanOut | Noticed] = {}
    for mid, found in parsed.items():
        if isinstance(found, FanOut | Noticed):
            commands[mid] = found
        elif not isinstance(found, RejectedEvent):
            kind, detail = found
            if isinstance(detail, ProductUpdated):
                products[mid] = detail
            else:
                valid[mid] = (kind, detail)
    return valid, products, commands


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    store.forget()
    parsed = {raw["messageId"]: _parsed(raw["body"]) for raw in event["Records"]}
    valid, products, commands = _sorted(parsed)
    # One BatchGetItem for every identifier (and tombstone) in the batch, then one write per customer.
    keys = {k for _, detail in valid.values() for k in identity_keys(detail.identifiers())}
    keys |= {c.profile_key for c in commands.values() if isinstance(c, Noticed)}
    try:
        store.prefetch_identities(keys)
    except Exception:  # only a saving: each event reads what it needs, and fails (and is retried) alone
        logger.warning("prefetch failed; reading per event", exc_info=True)
        store.forget()
    outcomes: dict[str, Ingested | int | Exception] = dict(
        zip(valid, ingest_batch(store, list(valid.values()), delays), strict=True)
    )
    outcomes |= {mid: _catalogued(product) for mid, product in products.items()}
    outcomes |= {mid: _commanded(command) for mid, command in commands.items()}

    def record(sqs_record: SQSRecord) -> str:
        result = outcomes.get(sqs_record.message_id, parsed[sqs_record.message_id])
        if isinstance(result, Exception):
            raise result  # a rejection goes to the DLQ with its reason; anything else is retried by SQS
        if isinstance(result, int):  # a page of a fan-out
            metrics.add_metric(name="CatalogChangeQueued", unit=MetricUnit.Count, value=result)
            return "fanned_out"
        assert isinstance(result, Ingested)
        if sqs_record.message_id in commands:  # a catalog change reaching an interested customer
            metrics.add_metric(name="CatalogChangeNoticed", unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=1)
        if result.merged:
            metrics.add_metric(name="IdentityMerges", unit=MetricUnit.Count, value=result.merged)
        if result.conflicts:  # never merged, never silent: identifiers of another customer were left out
            metrics.add_metric(name="IdentityConflicts", unit=MetricUnit.Count, value=1)
            extra = {"left_out": result.conflicts, "profile": pseudonym(result.profile_key)}
            logger.warning("identifiers of another customer left out", extra=extra)
        logger.debug("event ingested", extra={"outcome": result.outcome, "merged": result.merged})
        return result.outcome

    return batch.process(
        event, context, record, dead_letters, logger, metrics, backoff_on=(Retry,), redelivery=redelivery
    )
