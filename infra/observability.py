"""Seeing it: the ops topic, the alarms and the dashboard, built from the queues and functions the pipeline's
constructs already made (nothing here is a second list of resources to keep in step).

Every alarm notifies the ops topic on ALARM and on OK. The README's "Operating it" section is the runbook:
what each alarm means and the first thing to do when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast, get_args

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.core.events import Channel

from infra.constructs import (
    MAX_RECEIVE_COUNT,
    METRICS_NAMESPACE,
    Decide,
    Deliver,
    Feedback,
    Ingest,
    Tally,
    Unsubscribe,
)

AlarmT = TypeVar("AlarmT", bound=cw.AlarmBase)
FIVE_MINUTES = cdk.Duration.minutes(5)
HOUR = cdk.Duration.hours(1)
CHANNELS: tuple[str, ...] = get_args(Channel)

# SES reviews an account whose bounce rate reaches 5% and whose complaint rate reaches 0.1% (and may pause
# sending at 10% / 0.5%): "Reputation metrics messages", Amazon SES Developer Guide,
# https://docs.aws.amazon.com/ses/latest/dg/reputationdashboard-messages.html . We warn at half of each so
# there is time to act before the review, and raise a second alarm at the review level itself.
SES_BOUNCE_REVIEW = 0.05
SES_COMPLAINT_REVIEW = 0.001
BOUNCE_WARNING = SES_BOUNCE_REVIEW / 2
COMPLAINT_WARNING = SES_COMPLAINT_REVIEW / 2

ERROR_RATE_PERCENT = 5
"""Lambda errors per invocation. With partial batch responses a failing *record* is not an error; an error is
a whole invocation lost (crash, timeout, out of memory, an import that fails), so 5% is already a lot."""
DELIVERY_FAILURE_PERCENT = 5
"""Sends the provider refused (``failed``) or may not have taken (``unknown``), of all attempts."""
DECISIONS_BEFORE_SILENCE_MATTERS = 5
"""Decisions to send in half an hour, with not one message sent, before "sends stopped" fires: one or two
decisions can all be suppressed legitimately (consent withdrawn between decide and deliver)."""
ANOMALY_STD_DEVS = 3
LONGEST_SQS_DELAY_SECONDS = 900
"""Feedback re-queues SMS fallbacks with a delay; SQS allows at most 15 minutes."""


TALLY_LAG_MS = 15 * 60_000
"""How far behind the stream the tally may be before it is late: three of its five-minute batching windows."""


@dataclass(frozen=True)
class WorkQueue:
    """A queue of the pipeline, its dead-letter queue and the step (``POWERTOOLS_SERVICE_NAME``) consuming it."""

    name: str
    queue: sqs.Queue
    dead_letters: sqs.Queue
    step: str

    @property
    def age_threshold_seconds(self) -> int:
        """The oldest a message gets without a backlog: the longest SQS delay, then every receive before it is
        redriven to the DLQ. Older than that means the consumer is not keeping up (or not running)."""
        visibility = cast(sqs.CfnQueue, self.queue.node.default_child).visibility_timeout
        assert isinstance(visibility, int | float), "the work queue's visibility timeout must be a number"
        return LONGEST_SQS_DELAY_SECONDS + int(visibility) * MAX_RECEIVE_COUNT


def emf(name: str, step: str, *, period: cdk.Duration = FIVE_MINUTES, label: str | None = None) -> cw.Metric:
    """A count the functions print as EMF (powertools adds the ``service`` dimension, the step's name)."""
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": step},
        statistic="Sum",
        period=period,
        label=label or name,
    )


def ses_reputation(name: str, label: str) -> cw.Metric:
    """Account-level reputation (a fraction: 0.05 is 5%), what SES itself reviews, across every sender."""
    return cw.Metric(namespace="AWS/SES", metric_name=name, statistic="Maximum", period=HOUR, label=label)


def graph(title: str, metrics: list[cw.IMetric], **kwargs: object) -> cw.GraphWidget:
    """A third of a dashboard row."""
    return cw.GraphWidget(title=title, left=metrics, width=8, height=6, **kwargs)  # type: ignore[arg-type]


def percent(metric: cw.Metric, label: str) -> cw.MathExpression:
    return cw.MathExpression(expression="100 * rate", using_metrics={"rate": metric}, label=label)


def line(value: float, label: str, color: str = cw.Color.ORANGE) -> cw.HorizontalAnnotation:
    return cw.HorizontalAnnotation(value=value, label=label, color=color)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        ingest: Ingest,
        decide: Decide,
        deliver: Deliver,
        unsubscribe: Unsubscribe,
        feedback: Feedback,
        tally: Tally,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.prefix = stack.stack_name
        self.work_queues = [
            WorkQueue("events", ingest.queue, ingest.dead_letters, "ingest"),
            WorkQueue("consent", ingest.consent_queue, ingest.consent_dead_letters, "ingest"),
            WorkQueue("due-triggers", decide.queue, decide.dead_letters, "decide"),
            *(
                WorkQueue(f"delivery-{channel}", queue, deliver.dead_letters[channel], "deliver")
                for channel, queue in deliver.queues.items()
            ),
            WorkQueue("notifications", feedback.queue, feedback.dead_letters, "feedback"),
        ]
        self.functions: dict[str, lambda_.Function] = {
            "ingest": ingest.function,
            "decide": decide.function,
            "deliver": deliver.function,
            "feedback": feedback.function,
            "unsubscribe": unsubscribe.function,
            "tally": tally.function,
        }
        self.topic = self._ops_topic(stack)
        self.alarms: list[cw.AlarmBase] = []
        self._queue_alarms()
        self.tally_dead_letters = tally.dead_letters
        self._tally_alarms(tally)
        self._error_rate_alarms()
        self._ses_alarms()
        self._send_volume_alarms()
        self._coupon_pool_empty()
        self.dashboard = self._dashboard()

    # -- alarms ----------------------------------------------------------------------------------------

    def _ops_topic(self, stack: cdk.Stack) -> sns.Topic:
        cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        alarms_of_this_account = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": stack.format_arn(service="cloudwatch", resource="alarm:*")},
        }
        key = kms.Key(self, "TopicKey", enable_key_rotation=True, description="Encrypts nextbest's alarm notifications")
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com", conditions=alarms_of_this_account),
            "kms:GenerateDataKey*",
            "kms:Decrypt",
        )
        topic = sns.Topic(self, "Topic", display_name="nextbest operations", master_key=key, enforce_ssl=True)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[cloudwatch],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=alarms_of_this_account,
            )
        )
        email = self.node.try_get_context("opsEmail")
        if email:
            topic.add_subscription(subscriptions.EmailSubscription(str(email)))
        return topic

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        comparison: cw.ComparisonOperator,
        description: str,
        evaluation_periods: int = 1,
        datapoints: int | None = None,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            name,
            alarm_name=f"{self.prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints or evaluation_periods,
            treat_missing_data=missing,
        )
        return self._notify(alarm)

    def _notify(self, alarm: AlarmT) -> AlarmT:
        action = actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _queue_alarms(self) -> None:
        """Per work queue: a message in its dead-letter queue, and a backlog older than retries explain."""
        for wq in self.work_queues:
            self._alarm(
                f"DeadLetters-{wq.name}",
                wq.dead_letters.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum", label=f"{wq.name} DLQ"
                ),
                threshold=0,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                description=f"Messages are waiting in the {wq.name} dead-letter queue: records {wq.step} rejected "
                "(message attribute `reason`) or failed 5 times. Read them, fix the cause, then "
                "`nextbest replay <dlq-url>`.",
            )
            self._alarm(
                f"QueueAge-{wq.name}",
                wq.queue.metric_approximate_age_of_oldest_message(
                    period=FIVE_MINUTES, statistic="Maximum", label=f"{wq.name} oldest message"
                ),
                threshold=wq.age_threshold_seconds,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                description=f"The oldest message on the {wq.name} queue is older than retries alone explain "
                f"({wq.age_threshold_seconds} s): {wq.step} is not keeping up or not running. Check its errors, "
                "throttles and concurrency.",
            )

    def _tally_alarms(self, tally: Tally) -> None:
        """The tally falling behind the table's stream, and a batch it gave up (``infra.constructs.tally``)."""
        self._alarm(
            "DeadLetters-tally",
            tally.dead_letters.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum", label="tally failed batches"
            ),
            threshold=0,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description="The tally gave up a batch of the table's stream after failing for 23 hours: the campaigns' "
            "statistics lack the changes the message names (shard, sequence numbers). Fix the cause in the tally's "
            "log group; the decision records still hold every fact to recount from.",
        )
        self._alarm(
            "IteratorAge-tally",
            tally.function.metric("IteratorAge", period=FIVE_MINUTES, statistic="Maximum"),
            threshold=TALLY_LAG_MS,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            description=f"The tally is more than {TALLY_LAG_MS // 60_000} minutes behind the table's stream "
            "(beyond its batching window): statistics are late, and records expire from the stream after 24 hours. "
            "Check the tally's errors and throttles.",
        )

    def _error_rate_alarms(self) -> None:
        for step in self.functions:
            self._alarm(
                f"ErrorRate-{step}",
                self.error_rate(step),
                threshold=ERROR_RATE_PERCENT,
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                datapoints=2,
                description=f"More than {ERROR_RATE_PERCENT}% of {step} invocations failed as a whole (crash, "
                "timeout, out of memory). Read the function's log group for the exception.",
            )

    def error_rate(self, step: str) -> cw.MathExpression:
        function = self.functions[step]
        return cw.MathExpression(
            expression=f"100 * FILL({step}_errors, 0) / {step}_invocations",  # ids unique on a shared graph
            using_metrics={
                f"{step}_errors": function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                f"{step}_invocations": function.metric_invocations(period=FIVE_MINUTES, statistic="Sum"),
            },
            label=f"{step} error %",
            period=FIVE_MINUTES,
        )

    def _ses_alarms(self) -> None:
        # Reputation metrics are a rate over SES's own recent window, published only while mail flows: a gap
        # says nothing new, so the alarm keeps its state (IGNORE) instead of turning OK or ALARM on silence.
        levels = [
            ("Bounce", "Reputation.BounceRate", BOUNCE_WARNING, SES_BOUNCE_REVIEW),
            ("Complaint", "Reputation.ComplaintRate", COMPLAINT_WARNING, SES_COMPLAINT_REVIEW),
        ]
        for kind, metric_name, warning, review in levels:
            for level, threshold in (("Warning", warning), ("Review", review)):
                what = (
                    f"half of SES's {review:.1%} review level: act now"
                    if level == "Warning"
                    else "SES's review level: the account is likely under review"
                )
                self._alarm(
                    f"Ses{kind}Rate{level}",
                    ses_reputation(metric_name, f"{kind.lower()} rate"),
                    threshold=threshold,
                    comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    missing=cw.TreatMissingData.IGNORE,
                    description=f"The account's SES {kind.lower()} rate reached {threshold:.2%} ({what}). Find the "
                    f"campaign or list behind the {kind.lower()}s (dashboard, feedback log), pause it, and check "
                    "the suppression list is applied.",
                )

    def _send_volume_alarms(self) -> None:
        self._send_volume_anomaly()
        self._sends_stopped()
        self._delivery_failures()

    def _send_volume_anomaly(self) -> None:
        sent = emf("Delivery_sent", "deliver", period=HOUR, label="sent")
        # The model CloudWatch trains for the band; declared so it exists (and is reviewed) with the alarm.
        detector = cw.CfnAnomalyDetector(
            self,
            "SendsModel",
            single_metric_anomaly_detector=cw.CfnAnomalyDetector.SingleMetricAnomalyDetectorProperty(
                namespace=METRICS_NAMESPACE,
                metric_name="Delivery_sent",
                dimensions=[cw.CfnAnomalyDetector.DimensionProperty(name="service", value="deliver")],
                stat="Sum",
            ),
        )
        anomaly = cw.AnomalyDetectionAlarm(
            self,
            "SendVolumeAnomaly",
            alarm_name=f"{self.prefix}-SendVolumeAnomaly",
            alarm_description=f"Messages sent per hour left the anomaly band ({ANOMALY_STD_DEVS} standard "
            "deviations) for 2 of the last 3 hours. Above: a campaign or a loop sending more than usual, check "
            "recent campaign approvals and duplicates. Below: check deliver's errors and the delivery failures.",
            metric=sent,
            std_devs=ANOMALY_STD_DEVS,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,  # no sends at all: "SendsStopped" says so
        )
        anomaly.node.add_dependency(detector)
        self._notify(anomaly)

    def _coupon_pool_empty(self) -> None:
        self._alarm(
            "CouponPoolEmpty",
            emf("CouponPoolEmpty", "decide", label="decisions a campaign missed for want of a coupon code"),
            threshold=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description="A pool campaign would have been considered but its coupon pool is empty, so it sends "
            "nothing. `nextbest coupons left --campaign ID` shows what remains; upload more codes with `nextbest "
            "coupons upload`, or pause the campaign.",
        )

    def _sends_stopped(self) -> None:
        half_hour = cdk.Duration.minutes(30)
        self._alarm(
            "SendsStopped",
            cw.MathExpression(
                expression=f"IF(FILL(decided, 0) >= {DECISIONS_BEFORE_SILENCE_MATTERS} AND FILL(sent, 0) == 0, 1, 0)",
                using_metrics={
                    "decided": emf("DecisionsToSend", "decide", period=half_hour),
                    "sent": emf("Delivery_sent", "deliver", period=half_hour),
                },
                label="decided to send but sent nothing",
                period=half_hour,
            ),
            threshold=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=2,
            description="Decide chose messages to send for an hour and deliver sent none. Check the "
            "delivery queues' age, deliver's errors, Delivery_failed (SES sandbox, paused account, "
            "unverified sender) and the SNS SMS spend limit.",
        )

    def _delivery_failures(self) -> None:
        self._alarm(
            "DeliveryFailures",
            cw.MathExpression(
                expression="100 * (FILL(failed, 0) + FILL(unknown, 0)) / "
                "(FILL(sent, 0) + FILL(failed, 0) + FILL(unknown, 0))",
                using_metrics={
                    "sent": emf("Delivery_sent", "deliver"),
                    "failed": emf("Delivery_failed", "deliver"),
                    "unknown": emf("Delivery_unknown", "deliver"),
                },
                label="delivery failure %",
                period=FIVE_MINUTES,
            ),
            threshold=DELIVERY_FAILURE_PERCENT,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints=2,
            description=f"More than {DELIVERY_FAILURE_PERCENT}% of sends were refused by SES/SNS or timed out. "
            "The deliver log's `reason` holds the provider's error code.",
        )

    # -- dashboard: one row of three graphs per question, under the alarms' status ----------------------

    def _dashboard(self) -> cw.Dashboard:
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=self.prefix, default_interval=cdk.Duration.days(1))
        dashboard.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4))
        for row in (self._flow(), self._failures(), self._sends(), self._ses_reputation(), self._capacity()):
            dashboard.add_widgets(*row)
        return dashboard

    def _flow(self) -> list[cw.IWidget]:
        """Is work moving: what each step produced, and records in and out of each queue."""
        return [
            graph(
                "Pipeline outcomes",
                [
                    emf("EventsIngested", "ingest", label="events ingested"),
                    emf("Decisions", "decide", label="decisions"),
                    emf("DecisionsToSend", "decide", label="decisions to send"),
                    emf("Delivery_sent", "deliver", label="sent"),
                    emf("Unsubscribed", "unsubscribe", label="unsubscribed"),
                ],
            ),
            graph(
                "Records done per step (SQS deleted)",
                [
                    wq.queue.metric_number_of_messages_deleted(period=FIVE_MINUTES, label=wq.name)
                    for wq in self.work_queues
                ],
            ),
            graph(
                "Records arriving per step (SQS sent)",
                [
                    wq.queue.metric_number_of_messages_sent(period=FIVE_MINUTES, label=wq.name)
                    for wq in self.work_queues
                ],
            ),
        ]

    def _failures(self) -> list[cw.IWidget]:
        """What failed: whole invocations, rejected records, and sends that did not go out."""
        steps = ["ingest", "decide", "deliver", "feedback"]
        return [
            graph(
                "Lambda error rate %",
                [self.error_rate(step) for step in self.functions],
                left_annotations=[line(ERROR_RATE_PERCENT, "alarm", cw.Color.RED)],
            ),
            graph("Rejected records (to the DLQ)", [emf("Rejected", step, label=step) for step in steps]),
            graph(
                "Delivery outcomes",
                [
                    emf(f"Delivery_{outcome}", "deliver", label=outcome)
                    for outcome in ("failed", "unknown", "suppressed", "already_handled")
                ],
            ),
        ]

    def _sends(self) -> list[cw.IWidget]:
        """What waits in the dead-letter queues, and whether what was decided was sent, channel by channel."""
        return [
            graph(
                "Dead-letter queue depth",
                [
                    *(
                        wq.dead_letters.metric_approximate_number_of_messages_visible(
                            period=FIVE_MINUTES, statistic="Maximum", label=wq.name
                        )
                        for wq in self.work_queues
                    ),
                    self.tally_dead_letters.metric_approximate_number_of_messages_visible(
                        period=FIVE_MINUTES, statistic="Maximum", label="tally failed batches"
                    ),
                ],
            ),
            graph(
                "Decisions vs sends by channel",
                [
                    metric
                    for channel in CHANNELS
                    for metric in (
                        emf(f"DecisionsToSend_{channel}", "decide", label=f"{channel} decided"),
                        emf(f"Sent_{channel}", "deliver", label=f"{channel} sent"),
                    )
                ],
            ),
            graph(
                "Sends per hour and the anomaly band",
                [
                    cw.MathExpression(
                        expression=f"ANOMALY_DETECTION_BAND(sent, {ANOMALY_STD_DEVS})",
                        using_metrics={"sent": emf("Delivery_sent", "deliver", period=HOUR, label="sent")},
                        label="expected band",
                        period=HOUR,
                    ),
                    emf("Delivery_sent", "deliver", period=HOUR, label="sent"),
                ],
            ),
        ]

    def _ses_reputation(self) -> list[cw.IWidget]:
        """The account's reputation as SES reviews it, against the alarms' levels, and the events behind it."""
        return [
            graph(
                "SES bounce rate % (account)",
                [percent(ses_reputation("Reputation.BounceRate", "bounce"), "bounce rate %")],
                left_annotations=[
                    line(100 * BOUNCE_WARNING, "warning"),
                    line(100 * SES_BOUNCE_REVIEW, "SES review", cw.Color.RED),
                ],
            ),
            graph(
                "SES complaint rate % (account)",
                [percent(ses_reputation("Reputation.ComplaintRate", "complaint"), "complaint rate %")],
                left_annotations=[
                    line(100 * COMPLAINT_WARNING, "warning"),
                    line(100 * SES_COMPLAINT_REVIEW, "SES review", cw.Color.RED),
                ],
            ),
            graph(
                "SES events seen by feedback",
                [
                    emf(f"Feedback_{kind}", "feedback", label=kind.lower())
                    for kind in ("Send", "Delivery", "Bounce", "Complaint", "Reject")
                ],
            ),
        ]

    def _capacity(self) -> list[cw.IWidget]:
        """Whether the functions keep up: slow invocations, old messages, throttles."""
        return [
            graph(
                "Duration p99 (ms)",
                [
                    function.metric_duration(period=FIVE_MINUTES, statistic="p99", label=step)
                    for step, function in self.functions.items()
                ],
            ),
            graph(
                "Age of the oldest message (s)",
                [
                    wq.queue.metric_approximate_age_of_oldest_message(
                        period=FIVE_MINUTES, statistic="Maximum", label=wq.name
                    )
                    for wq in self.work_queues
                ],
            ),
            graph(
                "Throttles",
                [
                    function.metric_throttles(period=FIVE_MINUTES, statistic="Sum", label=step)
                    for step, function in self.functions.items()
                ],
            ),
        ]
