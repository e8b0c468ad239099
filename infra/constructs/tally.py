"""tally: the table's stream → the tally function → the campaigns' statistics (``nextbest.tally``).

The stream carries new and old images (a status change is counted from the status it left); the mapping's filters
pass only what is counted (decision records written, profile writes carrying an order's credits), so the function
is not invoked for every profile and marker (a decision's body, its sort key ``BODY``, never reaches it).

A batch gathers a shard's records for up to ``BATCHING_WINDOW`` (Lambda's longest), so the tally writes each of a
campaign's shard items once a window however many messages the campaign sends: statistics arrive up to five
minutes late, which Thompson sampling (it re-reads counts every minute) and the report take; caps and budgets are
leased by decide, never read from here. A batch that fails is retried until it succeeds: the shard waits (its
iterator age grows, an alarm says so) rather than counts go missing. Only a batch still failing after
``MAX_RECORD_AGE``, just before its records expire from the stream (24 hours), is given up: Lambda puts its shard
and sequence range on the dead-letter queue (an alarm), and the counts are short of those records until recounted.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.aws.store.table import CREDITS, DECISION
from nextbest.core.settings import TallySettings

from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import Shared

TABLE_ACCESS = TableAccess(
    # add_tally: UpdateItem (one per campaign and batch, conditional on the checkpoint, which a refusal returns: no
    # GetItem); fold_closed: Query (the campaign's shard items), a transaction of a DeleteItem and UpdateItems
    actions=("UpdateItem", "Query", "DeleteItem"),
)
BATCH_SIZE = 10_000
"""Records a batch may hold, DynamoDB Streams' most (Lambda also stops at its 6 MB payload, some thousands of
records): per campaign and shard, one write a batch."""
BATCHING_WINDOW = cdk.Duration.seconds(300)
"""How long the mapping gathers a shard's records before it invokes (Lambda's most): statistics up to five minutes
late, in as few writes as a window."""
WINDOW = cdk.Duration.seconds(900)
"""A tumbling window, only so that every event names its shard (``shardId``): the tally's items are per shard.
Lambda never puts records of two tumbling windows in one batch, so it is the longest allowed, three batching
windows."""
MAX_RECORD_AGE = cdk.Duration.hours(23)
"""A batch failing this long is given up (its description to the dead-letter queue) before its records expire."""
COUNTED = [
    lambda_.FilterCriteria.filter(
        {"eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"), "dynamodb": {"Keys": {"sk": {"S": [DECISION]}}}}
    ),
    lambda_.FilterCriteria.filter(
        {
            "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
            "dynamodb": {"NewImage": {CREDITS: {"S": lambda_.FilterRule.exists()}}},
        }
    ),
]
"""The stream records the tally counts something of (``nextbest.aws.store.stream``)."""


class Tally(Construct):
    """The tally function on the table's stream."""

    def __init__(self, scope: Construct, id: str, shared: Shared, table: dynamodb.Table) -> None:
        super().__init__(scope, id)
        self.dead_letters = sqs.Queue(
            self,
            "FailedBatches",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        """Where Lambda describes a batch it gave up (shard, first and last sequence numbers): counts to redo."""
        self.function = shared.function(
            self,
            "tally",
            TallySettings,
            table=table,
            table_access=TABLE_ACCESS,
            queues=[],
            dead_letters=None,
            timeout=cdk.Duration.seconds(60),
            memory=256,
        )
        self.function.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=BATCH_SIZE,
                max_batching_window=BATCHING_WINDOW,
                tumbling_window=WINDOW,
                bisect_batch_on_error=False,
                max_record_age=MAX_RECORD_AGE,
                on_failure=sources.SqsDlq(self.dead_letters),
                filters=COUNTED,
            )
        )
