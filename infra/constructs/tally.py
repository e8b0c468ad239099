"""tally: the table's stream → the tally function → the campaigns' statistics (``nextbest.tally``).

The stream carries new and old images (a status change is counted from the status it left); the mapping's filters
pass only what is counted (decision records written, profile writes carrying an order's credits), so the function
is not invoked for every profile and marker. A batch that fails is retried until it succeeds or its records
expire (24 hours): nothing is skipped while a fault lasts, so the shard waits (its iterator age grows) rather than
counts go missing.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
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
BATCH_SIZE = 1000
"""Records a batch may hold (Lambda also stops at its 6 MB payload): per campaign and shard, one write a batch."""
BATCHING_WINDOW = cdk.Duration.seconds(10)
"""How long the mapping gathers records before it invokes: statistics a few seconds late, in fewer writes."""
WINDOW = cdk.Duration.seconds(60)
"""A tumbling window, only so that every event names its shard (``shardId``): the tally's items are per shard."""
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
                filters=COUNTED,
            )
        )
