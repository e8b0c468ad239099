"""feedback: SES events, SMS replies and delivery events, push failures → encrypted SNS topics → queue → the
feedback function (suppressions, fallbacks to another channel).

The topics are their own construct, built before deliver (whose SES and SMS configuration sets publish to
them); the feedback function comes after decide, whose queue it hands fallbacks and retries to.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.core.settings import FeedbackSettings

from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import Shared, work_queue

TABLE_ACCESS = TableAccess(
    # decision (record and body): Query; message: GetItem; profile, change: BatchGetItem and PutItem;
    # move_decision, annotate_decision: UpdateItem; a fallback's new decision: PutItem
    actions=("Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"),
)


class FeedbackTopics(Construct):
    """Where providers publish what happened to a message, each topic writable by its service only, and only on
    behalf of this account (``aws:SourceAccount``), so another account cannot point its own number, configuration
    set or application at a topic and forge a STOP, a START or a delivery failure.

    SMS replies (STOP, START) arrive when the sending number's two-way SMS (AWS End User Messaging SMS) is set
    to publish to ``inbound_sms``; push failures when the platform application's EventDeliveryFailure is set
    to ``push_events``. The stack outputs both ARNs. SES events and SMS delivery events are published by a
    configuration set of deliver's, which grants its own publishing, bound to that configuration set.
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self, "TopicKey", enable_key_rotation=True, description="Encrypts SES feedback notifications in SNS"
        )
        for service in ("ses", "sms-voice", "sns"):  # a publisher to an encrypted topic needs the key
            self.key.grant(self.of_this_account(service), "kms:GenerateDataKey*", "kms:Decrypt")
        self.ses_events = self._topic("SesEvents")
        self.inbound_sms = self._topic("InboundSms", publisher="sms-voice")
        # Delivery events of texts sent through End User Messaging SMS (its configuration set publishes here).
        self.sms_events = self._topic("SmsEvents")
        self.push_events = self._topic("PushEvents", publisher="sns")

    @property
    def all(self) -> list[sns.Topic]:
        return [self.ses_events, self.inbound_sms, self.sms_events, self.push_events]

    def of_this_account(self, service: str) -> iam.PrincipalBase:
        """An AWS service acting for a resource of this account only."""
        account = cdk.Stack.of(self).account
        return iam.ServicePrincipal(
            f"{service}.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
        )

    def _topic(self, id: str, *, publisher: str | None = None) -> sns.Topic:
        topic = sns.Topic(self, id, master_key=self.key, enforce_ssl=True)
        if publisher:  # not grant_publish, which would grant the key a second time
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[self.of_this_account(publisher)], actions=["sns:Publish"], resources=[topic.topic_arn]
                )
            )
        return topic


class Feedback(Construct):
    """The notifications queue every feedback topic delivers to (raw), and the feedback function."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        topics: FeedbackTopics,
        decide_queue: sqs.Queue,
    ) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(30)
        self.queue, self.dead_letters = work_queue(self, "Notifications", timeout)
        for topic in topics.all:
            topic.add_subscription(subscriptions.SqsSubscription(self.queue, raw_message_delivery=True))
        self.function = shared.function(
            self,
            "feedback",
            FeedbackSettings,
            table=table,
            table_access=TABLE_ACCESS,
            queues=[self.queue],
            dead_letters=self.dead_letters,
            timeout=timeout,
            decide_queue_url=decide_queue.queue_url,
        )
        decide_queue.grant_send_messages(self.function)  # fallbacks and retries go through decide's guardrails
