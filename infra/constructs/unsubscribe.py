"""unsubscribe: RFC 8058 one-click unsubscribe, a public function URL that only honours links we signed."""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from nextbest.core.settings import UnsubscribeSettings

from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import Shared

RESERVED_CONCURRENCY = 10
"""Unsubscribe's URL is public and anonymous: with its concurrency reserved, a flood of requests is throttled (429)
ten at a time instead of using up the account's concurrency that ingest, decide, deliver and feedback need. Ten at
once, each a few reads and one write, serve far more one-click unsubscribes a second than people click."""
TABLE_ACCESS = TableAccess(
    # decision (record and body): Query; change (the e-mail opt-out): BatchGetItem reads the profile, PutItem
    # writes it back
    actions=("Query", "BatchGetItem", "PutItem"),
)


class Unsubscribe(Construct):
    """The unsubscribe function, its URL (every e-mail's ``List-Unsubscribe``) and the key signing the links
    (deliver signs with it, unsubscribe verifies)."""

    def __init__(self, scope: Construct, id: str, shared: Shared, table: dynamodb.Table) -> None:
        super().__init__(scope, id)
        self.signing_key = secretsmanager.Secret(
            self,
            "SigningKey",
            description="HMAC key of nextbest's unsubscribe links",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        )
        # Links already in inboxes are signed with this key: it keeps the logical id it had when it was built
        # inside the deliver construct, so a stack upgraded from then keeps the secret (and its value).
        cast(secretsmanager.CfnSecret, self.signing_key.node.default_child).override_logical_id(
            "DeliveryUnsubscribeSigningKeyB276E271"
        )
        self.function = shared.function(
            self,
            "unsubscribe",
            UnsubscribeSettings,
            table=table,
            table_access=TABLE_ACCESS,
            queues=[],
            dead_letters=None,
            timeout=cdk.Duration.seconds(10),
            reserved_concurrency=RESERVED_CONCURRENCY,
            signing_secret_arn=self.signing_key.secret_arn,
        )
        self.signing_key.grant_read(self.function)
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
