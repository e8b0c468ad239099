"""The one table: profiles, identity links, decisions and counters (``nextbest.aws.store``)."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct
from nextbest.aws.store import BY_CANONICAL, BY_CUSTOMER, BY_DUE, BY_SWEEP


class ProfileStore(Construct):
    """Retained and protected from deletion: it holds customers' profiles. Keep this construct's id and the
    table's (``ProfileStore/Table``): a new logical id would create a second, empty table."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expires_at",
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,  # the tally counts changes (``infra.constructs.tally``)
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self._index(BY_CUSTOMER, "customer", sort_key="decided_at")
        self._index(BY_SWEEP, "sweep", sort_key="pk")  # unused, deleted next release (``store.table.BY_SWEEP``)
        self._index(BY_CANONICAL, "canonical")
        self._index(BY_DUE, "due_shard", sort_key="due_at")

    def _index(self, name: str, partition_key: str, sort_key: str | None = None) -> None:
        """A keys-only index on string attributes."""
        self.table.add_global_secondary_index(
            index_name=name,
            partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING) if sort_key else None,
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )


@dataclass(frozen=True)
class TableAccess:
    """What one step's code does with the table (read from ``nextbest.aws.store``): the item actions it calls
    and the indexes it queries, granted on the table and on those indexes only.

    No Scan, no stream reads, no DescribeTable (CDK's ``grant_read_write_data`` adds all three, and every
    index). A transaction needs no action of its own: each ``Put``/``Update`` of ``TransactWriteItems`` is
    authorised as ``PutItem``/``UpdateItem``.
    """

    actions: tuple[str, ...]
    queries: tuple[str, ...] = ()

    def grant(self, table: dynamodb.Table, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee, actions=[f"dynamodb:{a}" for a in self.actions], resource_arns=[table.table_arn]
        )
        if self.queries:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["dynamodb:Query"],
                resource_arns=[f"{table.table_arn}/index/{index}" for index in self.queries],
            )
