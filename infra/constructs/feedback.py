"""feedback: SES events, SMS replies and delivery events, push failures → encrypted SNS topics → queue → the
feedback function (suppressions, fallbacks to another channel).

The topics are their own construct, built before deliver (whose SES and SMS configuration sets publish to
them); the feedback function comes after deliver, whose queue it sends fallbacks to.
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
    # decision, message: GetItem; profile, change: BatchGetItem and PutItem; move_decision, annotate_decision:
    # UpdateItem (a transaction of Updates with their counters); a fallback's new decision: PutItem
    actions=("GetItem", "BatchGetItem", "PutItem", "UpdateItem"),
)


class FeedbackTopics(Construct):
    """Where providers publish what happened to a message, each topic writable by its service only.

    SMS replies (STOP, START) arrive when the sending number's two-way SMS (AWS End User Messaging SMS) is set
    to publish to ``inbound_sms``; push failures when the platform application's EventDeliveryFailure is set
    to ``push_events``. The stack outputs both ARNs.
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self, "TopicKey", enable_key_rotation=True, description="Encrypts SES feedback notifications in SNS"
        )
        ses = iam.ServicePrincipal("ses.amazonaws.com")
        sms = iam.ServicePrincipal("sms-voice.amazonaws.com")
        push = iam.ServicePrincipal("sns.amazonaws.com")
        self.ses_events = self._topic("SesEvents", ses, grant_publish=False)  # SES's event destination grants
        self.inbound_sms = self._topic("InboundSms", sms)
        # Delivery events of texts sent through End User Messaging SMS (its configuration set publishes here).
        self.sms_events = self._topic("SmsEvents", sms)
        self.push_events = self._topic("PushEvents", push)

    @property
    def all(self) -> list[sns.Topic]:
        return [self.ses_events, self.inbound_sms, self.sms_events, self.push_events]

    def _topic(self, id: str, publisher: iam.ServicePrincipal, *, grant_publish: bool = True) -> sns.Topic:
        self.key.grant(publisher, "kms:GenerateDataKey*", "kms:Decrypt")
        topic = sns.Topic(self, id, master_key=self.key, enforce_ssl=True)
        if grant_publish:
            topic.grant_publish(publisher)
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
        deliver_queue: sqs.Queue,
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
            deliver_queue_url=deliver_queue.queue_url,
        )
        deliver_queue.grant_send_messages(self.function)
