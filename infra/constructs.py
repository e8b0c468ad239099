"""One construct per capability of the pipeline; the stack only wires them together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_smsvoice as smsvoice
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.aws.store import BY_CANONICAL, BY_CUSTOMER, BY_SWEEP
from nextbest.core.events import DETAIL_TYPES
from nextbest.core.settings import (
    DecideSettings,
    DeliverSettings,
    FeedbackSettings,
    IngestSettings,
    StageSettings,
    UnsubscribeSettings,
)

from infra import assets

MAX_RECEIVE_COUNT = 5
"""Deliveries of a message before SQS moves it to the dead-letter queue."""
CONSENT_TYPES = ["consent.updated", "customer.erased"]
"""Privacy events take the fast lane: an opt-out or erasure never waits behind a backlog of page views."""
BEHAVIOUR_TYPES = [t for t in DETAIL_TYPES if t not in CONSENT_TYPES]
METRICS_NAMESPACE = "nextbest"
"""CloudWatch namespace of every function's EMF metrics; the alarms and dashboard read it (``observability``)."""


class Shared(Construct):
    """What every function gets: the runtime layer and the same Lambda defaults (its code carries the
    ``nextbest`` modules it imports, see ``assets.function_code``)."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.layers = [
            lambda_.LayerVersion(
                self,
                "RuntimeLayer",
                code=assets.runtime_layer_code(),
                compatible_runtimes=[assets.RUNTIME],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description="Powertools, pydantic and jinja2 for arm64",
            ),
        ]

    def stage(
        self,
        scope: Construct,
        step: str,
        settings: type[StageSettings],
        *,
        table: dynamodb.Table,
        queues: list[sqs.Queue],
        dead_letters: sqs.Queue | None,
        timeout: cdk.Duration,
        memory: int = 512,
        code: lambda_.Code | None = None,
        extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
        **values: str | dict[str, int],
    ) -> lambda_.Function:
        """The function of one pipeline step, consuming its queues, with the grants every step needs.

        Its environment is built from the step's settings model (``nextbest.settings``), the same one the
        handler reads back, so a missing or misspelt setting fails the synth rather than a cold start.
        """
        if dead_letters is not None:
            values["dead_letter_queue_url"] = dead_letters.queue_url
        environment = settings.environment(table_name=table.table_name, **values)
        log_group = logs.LogGroup(
            scope, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        function = lambda_.Function(
            scope,
            "Function",
            description=f"nextbest {step}",
            runtime=assets.RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.handler",
            code=code or assets.function_code(step),
            layers=[*self.layers, *extra_layers],
            timeout=timeout,
            memory_size=memory,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=log_group,
            environment={
                "POWERTOOLS_SERVICE_NAME": step,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **environment,
            },
        )
        for queue in queues:
            function.add_event_source(sources.SqsEventSource(queue, batch_size=10, report_batch_item_failures=True))
        table.grant_read_write_data(function)
        if dead_letters is not None:
            dead_letters.grant_send_messages(function)
        return function


def work_queue(scope: Construct, id: str, consumer_timeout: cdk.Duration) -> tuple[sqs.Queue, sqs.Queue]:
    """A queue and its dead-letter queue. Visibility is 6 times the consumer's timeout, as AWS advises for
    Lambda event sources, so a slow batch is never handed to a second consumer while the first runs."""
    dlq = sqs.Queue(
        scope,
        f"{id}DeadLetters",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )
    queue = sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=cdk.Duration.seconds(consumer_timeout.to_seconds() * 6),
        retention_period=cdk.Duration.days(4),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=MAX_RECEIVE_COUNT),
    )
    return queue, dlq


class ProfileStore(Construct):
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
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=BY_CUSTOMER,
            partition_key=dynamodb.Attribute(name="customer", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="decided_at", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.table.add_global_secondary_index(
            index_name=BY_SWEEP,
            partition_key=dynamodb.Attribute(name="sweep", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.table.add_global_secondary_index(
            index_name=BY_CANONICAL,
            partition_key=dynamodb.Attribute(name="canonical", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )


class Decisioning(Construct):
    """Trigger alarms (EventBridge Scheduler, one per customer and trigger) wake decide through a queue."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        deliver_queue: sqs.Queue,
        site_url: str,
        campaigns: Path,
    ) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(60)
        self.queue, self.dead_letters = work_queue(self, "DueTriggers", timeout)
        self.schedule_group = scheduler.ScheduleGroup(self, "Alarms")
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="Lets EventBridge Scheduler put due triggers on the decide queue",
        )
        self.queue.grant_send_messages(self.scheduler_role)
        # The daily sweep finds the customers no event points at (at risk, lapsed): decide pages through
        # the buyers (a sparse index, in shards), one queue message per page, so any size survives retries.
        self.sweep = scheduler.Schedule(
            self,
            "DailySweep",
            schedule=scheduler.ScheduleExpression.rate(cdk.Duration.days(1)),
            description="Wakes decide to sweep profiles for at-risk and win-back customers",
            target=scheduler_targets.SqsSendMessage(
                self.queue,
                role=self.scheduler_role,
                input=scheduler.ScheduleTargetInput.from_object(
                    {"sweep_at": scheduler.ContextAttribute.scheduled_time}
                ),
            ),
        )
        # Only decide scores, so only decide carries numpy/scipy/scikit-learn and the model files.
        self.ml_layer = lambda_.LayerVersion(
            self,
            "MlLayer",
            code=assets.ml_layer_code(),
            compatible_runtimes=[assets.RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="numpy, scipy, scikit-learn, joblib for arm64 and the verified model set (/opt/models)",
        )
        self.function = shared.stage(
            self,
            "decide",
            DecideSettings,
            table=table,
            queues=[self.queue],
            dead_letters=self.dead_letters,
            timeout=timeout,
            memory=1024,
            code=assets.function_code("decide", {"campaigns": campaigns}),
            deliver_queue_url=deliver_queue.queue_url,
            site_url=site_url,
            campaigns_dir="campaigns",
            models_dir=assets.MODELS_MOUNT,
            extra_layers=(self.ml_layer,),
            decide_queue_url=self.queue.queue_url,
            **self.scheduling(),
        )
        deliver_queue.grant_send_messages(self.function)
        self.queue.grant_send_messages(self.function)
        self.allow_arming(self.function)

    def scheduling(self) -> dict[str, Any]:
        """What a function needs to arm trigger alarms (ingest for events, decide for follow-ups and
        quiet-hour deferrals)."""
        return {
            "schedule_group": self.schedule_group.schedule_group_name,
            "decide_queue_arn": self.queue.queue_arn,
            "scheduler_role_arn": self.scheduler_role.role_arn,
        }

    def allow_arming(self, function: lambda_.Function) -> None:
        self.schedule_group.grant_write_schedules(function)
        self.schedule_group.grant_delete_schedules(function)
        self.scheduler_role.grant_pass_role(function.grant_principal)


class EventIngestion(Construct):
    """The bus, its rules and the ingest function. Consent changes get their own queue so an opt-out is
    never stuck behind a backlog of page views; anything the rules do not know lands in ingest too, where it
    is rejected to the dead-letter queue with its reason instead of vanishing."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        bus_name: str,
        trigger_delay_seconds: dict[str, int],
        decisioning: Decisioning,
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
        self.function = shared.stage(
            self,
            "ingest",
            IngestSettings,
            table=table,
            queues=[self.queue, self.consent_queue],
            dead_letters=self.dead_letters,
            timeout=timeout,
            trigger_delay_seconds=trigger_delay_seconds,
            **decisioning.scheduling(),
        )
        decisioning.allow_arming(self.function)


class Delivery(Construct):
    """The deliver function with SES (identity, configuration set), SMS and, when the operator gives an SNS
    platform application (CloudFormation cannot create one: it holds FCM/APNs credentials), push.

    SMS goes through SNS, or, when ``sms_events`` is given, through AWS End User Messaging SMS with a
    configuration set that publishes every ``TEXT_*`` event to that topic, so delivery failures reach
    feedback (SNS SMS reports delivery status to CloudWatch Logs only)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        sender: str,
        feedback_topic: sns.Topic,
        *,
        push_application_arn: str = "",
        sms_events: sns.Topic | None = None,
    ) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(30)
        self.queue, self.dead_letters = work_queue(self, "Requests", timeout)
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            reputation_metrics=True,
            sending_enabled=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        self.configuration_set.add_event_destination(
            "ToFeedback",
            destination=ses.EventDestination.sns_topic(feedback_topic),
            events=[
                ses.EmailSendingEvent.SEND,
                ses.EmailSendingEvent.DELIVERY,
                ses.EmailSendingEvent.BOUNCE,
                ses.EmailSendingEvent.COMPLAINT,
                ses.EmailSendingEvent.REJECT,
                ses.EmailSendingEvent.RENDERING_FAILURE,
                ses.EmailSendingEvent.DELIVERY_DELAY,
                ses.EmailSendingEvent.OPEN,
                ses.EmailSendingEvent.CLICK,
            ],
        )
        self.identity = ses.EmailIdentity(
            self, "Sender", identity=ses.Identity.email(sender), configuration_set=self.configuration_set
        )
        # RFC 8058 one-click unsubscribe: a public function URL that only honours links we signed.
        self.signing_key = secretsmanager.Secret(
            self,
            "UnsubscribeSigningKey",
            description="HMAC key of nextbest's unsubscribe links",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
        )
        endpoint = Construct(self, "Unsubscribe")
        self.unsubscribe = shared.stage(
            endpoint,
            "unsubscribe",
            UnsubscribeSettings,
            table=table,
            queues=[],
            dead_letters=None,
            timeout=cdk.Duration.seconds(10),
            signing_secret_arn=self.signing_key.secret_arn,
        )
        self.signing_key.grant_read(self.unsubscribe)
        self.unsubscribe_url = self.unsubscribe.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        self.function = shared.stage(
            self,
            "deliver",
            DeliverSettings,
            table=table,
            queues=[self.queue],
            dead_letters=self.dead_letters,
            timeout=timeout,
            sender=sender,
            configuration_set=self.configuration_set.configuration_set_name,
            unsubscribe_url=self.unsubscribe_url.url,
            signing_secret_arn=self.signing_key.secret_arn,
            deliver_queue_url=self.queue.queue_url,
            push_platform_application_arn=push_application_arn,
            sms_configuration_set=self._sms_configuration(sms_events),
        )
        self.queue.grant_send_messages(self.function)  # fallbacks to another channel
        self.signing_key.grant_read(self.function)
        stack = cdk.Stack.of(self)
        self.push_endpoints = ""
        if push_application_arn:
            # arn:…:app/GCM/shop → arn:…:endpoint/GCM/shop/*: the endpoints of this application only.
            self.push_endpoints = push_application_arn.replace(":app/", ":endpoint/", 1) + "/*"
            self.function.add_to_role_policy(
                iam.PolicyStatement(actions=["sns:CreatePlatformEndpoint"], resources=[push_application_arn])
            )
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sns:GetEndpointAttributes", "sns:SetEndpointAttributes", "sns:Publish"],
                    resources=[self.push_endpoints],
                )
            )
        if self.sms_configuration is not None:
            opt_outs = stack.format_arn(service="sms-voice", resource="opt-out-list", resource_name="Default")
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sms-voice:SendTextMessage"], resources=[self.sms_configuration.attr_arn, opt_outs]
                )
            )
            self.function.add_to_role_policy(
                iam.PolicyStatement(actions=["sms-voice:DescribeOptedOutNumbers"], resources=[opt_outs])
            )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail", "ses:SendRawEmail"],
                resources=[
                    self.identity.email_identity_arn,
                    stack.format_arn(
                        service="ses",
                        resource="configuration-set",
                        resource_name=self.configuration_set.configuration_set_name,
                    ),
                ],
            )
        )
        # SMS goes to phone numbers, which are not ARNs: allow Publish to anything that is *not* a topic.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], not_resources=["arn:aws:sns:*:*:*"])
        )
        # The STOP list SNS keeps per account is looked up before every text; the action has no resource.
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:CheckIfPhoneNumberIsOptedOut"], resources=["*"])
        )

    def _sms_configuration(self, sms_events: sns.Topic | None) -> str:
        self.sms_configuration: smsvoice.CfnConfigurationSet | None = None
        if sms_events is None:
            return ""
        self.sms_configuration = smsvoice.CfnConfigurationSet(
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
        return self.sms_configuration.ref


class Feedback(Construct):
    """SES events and SMS replies → encrypted SNS topics → queue → feedback function.

    SMS replies (STOP, START) arrive when the sending number's two-way SMS (AWS End User Messaging SMS)
    is set to publish to ``inbound_sms``; the stack outputs its ARN.
    """

    def __init__(self, scope: Construct, id: str, shared: Shared) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(30)
        key = kms.Key(
            self, "TopicKey", enable_key_rotation=True, description="Encrypts SES feedback notifications in SNS"
        )
        key.grant(iam.ServicePrincipal("ses.amazonaws.com"), "kms:GenerateDataKey*", "kms:Decrypt")
        self.topic = sns.Topic(self, "Topic", master_key=key, enforce_ssl=True)
        self.queue, self.dead_letters = work_queue(self, "Notifications", timeout)
        self.topic.add_subscription(subscriptions.SqsSubscription(self.queue, raw_message_delivery=True))
        sms = iam.ServicePrincipal("sms-voice.amazonaws.com")
        key.grant(sms, "kms:GenerateDataKey*", "kms:Decrypt")
        self.inbound_sms = sns.Topic(self, "InboundSms", master_key=key, enforce_ssl=True)
        self.inbound_sms.grant_publish(sms)
        self.inbound_sms.add_subscription(subscriptions.SqsSubscription(self.queue, raw_message_delivery=True))
        # Delivery events of texts sent through End User Messaging SMS (its configuration set publishes here).
        self.sms_events = sns.Topic(self, "SmsEvents", master_key=key, enforce_ssl=True)
        self.sms_events.grant_publish(sms)
        self.sms_events.add_subscription(subscriptions.SqsSubscription(self.queue, raw_message_delivery=True))
        # Push delivery failures: the operator points the platform application's EventDeliveryFailure here.
        push = iam.ServicePrincipal("sns.amazonaws.com")
        key.grant(push, "kms:GenerateDataKey*", "kms:Decrypt")
        self.push_events = sns.Topic(self, "PushEvents", master_key=key, enforce_ssl=True)
        self.push_events.grant_publish(push)
        self.push_events.add_subscription(subscriptions.SqsSubscription(self.queue, raw_message_delivery=True))
        self.timeout = timeout

    def attach(self, shared: Shared, table: dynamodb.Table, deliver_queue: sqs.Queue) -> None:
        self.function = shared.stage(
            self,
            "feedback",
            FeedbackSettings,
            table=table,
            queues=[self.queue],
            dead_letters=self.dead_letters,
            timeout=self.timeout,
            deliver_queue_url=deliver_queue.queue_url,
        )
        deliver_queue.grant_send_messages(self.function)
