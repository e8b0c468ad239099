"""deliver: a queue per channel, the deliver function with SES (identity, configuration set), SMS and, when the
operator gives an SNS platform application (CloudFormation cannot create one: it holds FCM/APNs credentials), push.

Each channel's queue has its own event source mapping, whose ``MaximumConcurrency`` is derived from the provider's
send rate (:func:`maximum_concurrency`), so one provider's throttling or backlog holds up no other channel, and the
function never runs more invocations against a provider than its rate can use. The rates are CDK context
(:data:`PROVIDER_RATES`), with these defaults:

* e-mail, ``sesMaxSendRate`` = 14/s. SES grants each account its own maximum sending rate (1/s in the sandbox;
  "varies based on your specific use case" out of it: "Service quotas in Amazon SES",
  https://docs.aws.amazon.com/ses/latest/dg/quotas.html); 14/s is what new production accounts were long given.
  Set it to ``GetAccount``'s ``SendQuota.MaxSendRate``.
* SMS, ``smsMaxSendRate`` = 3/s: a US toll-free number's 3 message parts per second (100 for a US short code):
  "What are the Message Parts per Second (MPS) limits", AWS End User Messaging SMS User Guide,
  https://docs.aws.amazon.com/sms-voice/latest/userguide/sms-limitations-mps.html . SNS SMS sends through the
  same origination numbers.
* push, ``pushMaxSendRate`` = 100/s: our choice, far under SNS's Publish quota for the Region
  (https://docs.aws.amazon.com/general/latest/gr/sns.html), to bound what a flash sale costs FCM/APNs at once.

``MaximumConcurrency`` must lie between 2 and 1,000 ("ScalingConfig", AWS Lambda API Reference,
https://docs.aws.amazon.com/lambda/latest/dg/API_ScalingConfig.html); Lambda's SQS poller then invokes no more
than that, and unlike reserved concurrency it throttles nothing: messages wait on the queue ("Configuring scaling
behavior for SQS event source mappings", https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
A send the provider throttles anyway (the minimum of 2 can exceed a slow rate) is kept: deliver queues it again,
delayed (``functions/deliver/handler.py``).
"""

from __future__ import annotations

import math

import aws_cdk as cdk
import jsii
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from aws_cdk import aws_smsvoice as smsvoice
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.core.events import CHANNELS, Channel
from nextbest.core.settings import DELIVER_TIMEOUT, DeliverSettings

from infra.constructs.feedback import FeedbackTopics
from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import Shared, consume, context_number, work_queue
from infra.constructs.unsubscribe import Unsubscribe

SES_EVENTS = [
    ses.EmailSendingEvent.SEND,
    ses.EmailSendingEvent.DELIVERY,
    ses.EmailSendingEvent.BOUNCE,
    ses.EmailSendingEvent.COMPLAINT,
    ses.EmailSendingEvent.REJECT,
    ses.EmailSendingEvent.RENDERING_FAILURE,
    ses.EmailSendingEvent.DELIVERY_DELAY,
    ses.EmailSendingEvent.OPEN,
    ses.EmailSendingEvent.CLICK,
]
"""Every SES event feedback acts on or records, published to its topic."""
PROVIDER_RATES: dict[Channel, tuple[str, float]] = {
    "email": ("sesMaxSendRate", 14.0),
    "sms": ("smsMaxSendRate", 3.0),
    "push": ("pushMaxSendRate", 100.0),
}
"""Per channel: the CDK context key of the provider's send rate (messages a second) and its default (above)."""
SECONDS_PER_SEND = 0.1
"""What one request costs an invocation, at least: three DynamoDB requests (decision, profile, claim), the
provider's API call and the transaction recording the send, each some milliseconds to tens of them. An invocation
sends one request after another, so it sends at most 1/SECONDS_PER_SEND a second. Context ``deliverSecondsPerSend``."""
QUEUE_IDS: dict[Channel, str] = {"email": "Requests", "sms": "SmsRequests", "push": "PushRequests"}
"""Each channel's queue's construct id. E-mail keeps the one queue's id from before there was a queue per channel,
so a deploy keeps that queue and the requests waiting on it (deliver sends a request whatever queue it is on)."""


def maximum_concurrency(rate_per_s: float, seconds_per_send: float = SECONDS_PER_SEND) -> int:
    """Invocations at once that, each sending one request after another, stay within ``rate_per_s``: the rate
    times what a send takes, within the 2..1,000 Lambda allows."""
    return max(2, min(1000, math.floor(rate_per_s * seconds_per_send)))


TABLE_ACCESS = TableAccess(
    # decision (record and body): Query; claim: UpdateItem, then GetItem when its answer was lost; profile, change:
    # BatchGetItem and PutItem; move_decision: UpdateItem (in a transaction with the profile when it logs a
    # message); remember_message and a fallback's new (waiting) decision: PutItem
    actions=("Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"),
)


class Deliver(Construct):
    """SMS goes through SNS, or, when ``sms_events`` is given, through AWS End User Messaging SMS with a
    configuration set that publishes every ``TEXT_*`` event to that topic, so delivery failures reach
    feedback (SNS SMS reports delivery status to CloudWatch Logs only)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        sender: str,
        topics: FeedbackTopics,
        unsubscribe: Unsubscribe,
        *,
        push_application_arn: str = "",
        sms_events: sns.Topic | None = None,
    ) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(DELIVER_TIMEOUT.total_seconds())
        self.queues: dict[Channel, sqs.Queue] = {}
        self.dead_letters: dict[Channel, sqs.Queue] = {}
        for channel in CHANNELS:
            self.queues[channel], self.dead_letters[channel] = work_queue(self, QUEUE_IDS[channel], timeout)
        self._decide_queue: sqs.IQueue | None = None
        self.configuration_set, self.identity = self._email(sender, topics.ses_events)
        self.sms_configuration = self._sms_configuration(sms_events)
        self.function = shared.function(
            self,
            "deliver",
            DeliverSettings,
            table=table,
            table_access=TABLE_ACCESS,
            queues=[],
            dead_letters=None,
            timeout=timeout,
            dead_letter_queue_urls={self.queues[c].queue_name: self.dead_letters[c].queue_url for c in CHANNELS},
            sender=sender,
            configuration_set=self.configuration_set.configuration_set_name,
            unsubscribe_url=unsubscribe.url.url,
            signing_secret_arn=unsubscribe.signing_key.secret_arn,
            decide_queue_url=cdk.Lazy.string(_DecideQueueUrl(self)),
            push_platform_application_arn=push_application_arn,
            sms_configuration_set=self.sms_configuration.ref if self.sms_configuration else "",
        )
        self.max_concurrency = self._consume()
        unsubscribe.signing_key.grant_read(self.function)
        self.push_endpoints = self._allow_push(push_application_arn)
        self._allow_end_user_messaging()
        self._allow_email()
        self._allow_sns_sms()

    def _consume(self) -> dict[Channel, int]:
        """Each channel's queue consumed with the concurrency its provider's rate allows; deliver may send to its
        own queues (a throttled request goes back, delayed) and to their dead-letter queues."""
        seconds_per_send = context_number(self, "deliverSecondsPerSend", SECONDS_PER_SEND)
        limits: dict[Channel, int] = {}
        for channel, (key, default) in PROVIDER_RATES.items():
            rate = context_number(self, key, default)
            limits[channel] = maximum_concurrency(rate, seconds_per_send)
            consume(self.function, self.queues[channel], limits[channel])
            self.queues[channel].grant_send_messages(self.function)
            self.dead_letters[channel].grant_send_messages(self.function)
        return limits

    def hand_back_to(self, decide_queue: sqs.IQueue) -> None:
        """decide's queue, where deliver hands back what it may not send itself: a fallback to another channel,
        a send that quiet hours overtook. Given once decide exists (decide queues for deliver, so it is built
        after); a stack that never gives it fails to synthesize."""
        self._decide_queue = decide_queue
        decide_queue.grant_send_messages(self.function)

    def _email(self, sender: str, ses_events: sns.Topic) -> tuple[ses.ConfigurationSet, ses.EmailIdentity]:
        """The sender's identity and its configuration set, which suppresses bounced and complaining addresses
        and publishes every event to feedback."""
        configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            reputation_metrics=True,
            sending_enabled=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        configuration_set.add_event_destination(
            "ToFeedback", destination=ses.EventDestination.sns_topic(ses_events), events=SES_EVENTS
        )
        identity = ses.EmailIdentity(
            self, "Sender", identity=ses.Identity.email(sender), configuration_set=configuration_set
        )
        return configuration_set, identity

    def _sms_configuration(self, sms_events: sns.Topic | None) -> smsvoice.CfnConfigurationSet | None:
        if sms_events is None:
            return None
        configuration = smsvoice.CfnConfigurationSet(
            self,
            "SmsConfigurationSet",
            event_destinations=[
                smsvoice.CfnConfigurationSet.EventDestinationProperty(
                    enabled=True,
                    event_destination_name="ToFeedback",
                    matching_event_types=["TEXT_ALL"],
                    sns_destination=smsvoice.CfnConfigurationSet.SnsDestinationProperty(topic_arn=sms_events.topic_arn),
                )
            ],
        )
        # End User Messaging SMS publishes this configuration set's events, and no other's, to the topic.
        sms_events.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("sms-voice.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[sms_events.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account},
                    "ArnEquals": {"aws:SourceArn": configuration.attr_arn},
                },
            )
        )
        return configuration

    def _allow_push(self, application_arn: str) -> str:
        """Push through the operator's platform application: its endpoints (pattern returned), nothing else."""
        if not application_arn:
            return ""
        # arn:…:app/GCM/shop → arn:…:endpoint/GCM/shop/*: the endpoints of this application only.
        endpoints = application_arn.replace(":app/", ":endpoint/", 1) + "/*"
        self._allow(["sns:CreatePlatformEndpoint"], [application_arn])
        self._allow(["sns:GetEndpointAttributes", "sns:SetEndpointAttributes", "sns:Publish"], [endpoints])
        return endpoints

    def _allow_end_user_messaging(self) -> None:
        if self.sms_configuration is None:
            return
        opt_outs = cdk.Stack.of(self).format_arn(service="sms-voice", resource="opt-out-list", resource_name="Default")
        self._allow(["sms-voice:SendTextMessage"], [self.sms_configuration.attr_arn, opt_outs])
        self._allow(["sms-voice:DescribeOptedOutNumbers"], [opt_outs])

    def _allow_email(self) -> None:
        configuration_set = cdk.Stack.of(self).format_arn(
            service="ses", resource="configuration-set", resource_name=self.configuration_set.configuration_set_name
        )
        self._allow(["ses:SendEmail", "ses:SendRawEmail"], [self.identity.email_identity_arn, configuration_set])

    def _allow_sns_sms(self) -> None:
        # SMS through SNS goes to phone numbers, which are not ARNs: Publish to anything that is *not* an SNS ARN
        # (topic, application or endpoint), in this stack's partition.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], not_resources=[f"arn:{cdk.Aws.PARTITION}:sns:*:*:*"])
        )
        # The STOP list SNS keeps per account is looked up before every text; the action has no resource.
        self._allow(["sns:CheckIfPhoneNumberIsOptedOut"], ["*"])

    def _allow(self, actions: list[str], resources: list[str]) -> None:
        self.function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources))


@jsii.implements(cdk.IStableStringProducer)
class _DecideQueueUrl:
    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver

    def produce(self) -> str:
        queue = self.deliver._decide_queue
        if queue is None:
            raise ValueError("Deliver.hand_back_to(decide queue) was never called")
        return queue.queue_url
