"""ingest: the bus, its rules and the ingest function, which merges events into profiles (and their triggers)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from nextbest.aws.store import BY_CANONICAL, BY_CUSTOMER
from nextbest.core.events import DETAIL_TYPES
from nextbest.core.profiles import TriggerDelays
from nextbest.core.settings import IngestSettings

from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import Shared, work_queue

CONSENT_TYPES = ["consent.updated", "customer.erased"]
"""Privacy events take the fast lane: an opt-out or erasure never waits behind a backlog of page views."""
BEHAVIOUR_TYPES = [t for t in DETAIL_TYPES if t not in CONSENT_TYPES]
TABLE_ACCESS = TableAccess(
    # prefetch, resolve, erased: BatchGetItem; save: PutItem, or a transaction of Puts (profile with an order's
    # credits, redirects, event markers); lift_tombstones: DeleteItem; erase: BatchWriteItem (deletes and
    # tombstones); put_product: GetItem then PutItem; put_interests: BatchWriteItem; interested: Query (the table's
    # own keys: a product's interest index)
    actions=("BatchGetItem", "GetItem", "PutItem", "DeleteItem", "BatchWriteItem", "Query"),
    # erasure finds every identifier leading to a person (by_canonical) and the decisions made for them (by_customer)
    queries=(BY_CANONICAL, BY_CUSTOMER),
)


class Ingest(Construct):
    """Consent changes get their own queue so an opt-out is never stuck behind a backlog of page views;
    anything the rules do not know lands in ingest too, where it is rejected to the dead-letter queue with
    its reason instead of vanishing. Ingest also sends to its events queue itself: the fan-out of a catalog change to
    the customers interested in the product (``nextbest.core.interest``)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        bus_name: str,
        delays: TriggerDelays,
    ) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(30)
        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name)
        self.queue, self.dead_letters = work_queue(self, "Events", timeout)
        self.consent_queue, self.consent_dead_letters = work_queue(self, "Consent", timeout)
        routes = [
            ("Behaviour", BEHAVIOUR_TYPES, self.queue, self.dead_letters),
            ("ConsentChanges", CONSENT_TYPES, self.consent_queue, self.consent_dead_letters),
            ("Unroutable", events.Match.anything_but(*DETAIL_TYPES), self.queue, self.dead_letters),
        ]
        for name, detail_types, queue, dlq in routes:
            events.Rule(
                self,
                name,
                event_bus=self.bus,
                event_pattern=events.EventPattern(detail_type=detail_types),
                targets=[targets.SqsQueue(queue, dead_letter_queue=dlq)],
            )
        self.erasure_key = secretsmanager.Secret(
            self,
            "ErasureKey",
            description="HMAC key of nextbest's erasure tombstones (never rotate it: old tombstones would be lost)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=cdk.RemovalPolicy.RETAIN,  # the table it keys is retained too
        )
        self.function = shared.function(
            self,
            "ingest",
            IngestSettings,
            table=table,
            table_access=TABLE_ACCESS,
            queues=[self.queue, self.consent_queue],
            dead_letters=self.dead_letters,
            timeout=timeout,
            trigger_delay_seconds={k: int(v.total_seconds()) for k, v in delays.items()},
            default_time_zone=delays.time_zone,
            catalog_watch=delays.watch,
            events_queue_url=self.queue.queue_url,
            erasure_secret_arn=self.erasure_key.secret_arn,
        )
        self.erasure_key.grant_read(self.function)
        self.queue.grant_send_messages(self.function)
