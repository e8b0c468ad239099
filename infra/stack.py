"""The nextbest stack: bus → ingest → profiles → decide → deliver → SES/SNS → feedback; the table's stream →
tally."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from constructs import Construct
from nextbest.core.campaigns import load_campaigns, load_policy, trigger_delays
from nextbest.core.messages import check_creatives
from nextbest.core.profiles import TriggerDelays

from infra.constructs import (
    Decide,
    Deliver,
    Feedback,
    FeedbackTopics,
    Ingest,
    ProfileStore,
    Shared,
    Tally,
    Unsubscribe,
)
from infra.observability import Observability


class NextbestStack(cdk.Stack):
    """One construct per step, built in the order their references need: feedback's topics before deliver
    (whose SES and SMS configuration sets publish to them), deliver before decide (which queues messages to
    it; deliver hands fallbacks back to decide's queue, given once decide exists), decide before feedback (which
    hands fallbacks and retries to decide)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bus_name: str,
        sender: str,
        site_url: str,
        campaigns: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, id, **kwargs)  # type: ignore[arg-type]
        shared = Shared(self, "Shared")
        self.store = ProfileStore(self, "ProfileStore")
        table = self.store.table
        self.feedback_topics = FeedbackTopics(self, "FeedbackTopics")
        self.unsubscribe = Unsubscribe(self, "Unsubscribe", shared, table)
        self.deliver = Deliver(
            self,
            "Deliver",
            shared,
            table,
            sender,
            self.feedback_topics,
            self.unsubscribe,
            push_application_arn=str(self.node.try_get_context("pushPlatformApplicationArn") or ""),
            sms_events=self.feedback_topics.sms_events if self._sms_via_end_user_messaging else None,
        )
        self.decide = Decide(self, "Decide", shared, table, self.deliver.queues, site_url, campaigns)
        self.deliver.hand_back_to(self.decide.queue)
        self.ingest = Ingest(self, "Ingest", shared, table, bus_name, _trigger_delays(campaigns))
        self.feedback = Feedback(self, "Feedback", shared, table, self.feedback_topics, self.decide.queue)
        self.tally = Tally(self, "Tally", shared, table)
        steps = (self.unsubscribe, self.ingest, self.decide, self.deliver, self.feedback, self.tally)
        self.functions = [step.function for step in steps]
        self.observability = Observability(
            self,
            "Observability",
            ingest=self.ingest,
            decide=self.decide,
            deliver=self.deliver,
            unsubscribe=self.unsubscribe,
            feedback=self.feedback,
            tally=self.tally,
        )
        self._outputs()

    @property
    def _sms_via_end_user_messaging(self) -> bool:
        """``-c smsVia=end-user-messaging``: texts through End User Messaging SMS, their events to feedback."""
        return bool(self.node.try_get_context("smsVia") == "end-user-messaging")

    def _outputs(self) -> None:
        """What an operator needs by name: the bus to put events on, the table for ``explain``, ``report`` and
        ``tombstones``, each dead-letter queue for ``replay``, the dashboard, the topics to point AWS at, and the
        retained schedule group (the README's teardown)."""
        cdk.CfnOutput(self, "BusName", value=self.ingest.bus.event_bus_name)
        for wq in self.observability.work_queues:
            cdk.CfnOutput(
                self,
                "DeadLetters" + wq.name.title().replace("-", ""),
                value=wq.dead_letters.queue_url,
                description=f"The {wq.name} dead-letter queue: nextbest replay <this URL> after a fix",
            )
        cdk.CfnOutput(
            self,
            "Dashboard",
            value=f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards/dashboard/{self.observability.dashboard.dashboard_name}",
            description="The CloudWatch dashboard of this stack",
        )
        cdk.CfnOutput(
            self,
            "ScheduleGroup",
            value=self.decide.schedule_group.schedule_group_name,
            description="The reminders' schedule group (retained when the stack is deleted)",
        )
        cdk.CfnOutput(
            self,
            "OpsTopic",
            value=self.observability.topic.topic_arn,
            description="Every alarm notifies this topic; subscribe your on-call here (or deploy -c opsEmail=…)",
        )
        cdk.CfnOutput(self, "TableName", value=self.store.table.table_name)
        cdk.CfnOutput(
            self,
            "ErasureKey",
            value=self.ingest.erasure_key.secret_arn,
            description="The secret keying erasure tombstones (nextbest tombstones migrate --secret)",
        )
        cdk.CfnOutput(
            self,
            "CouponKey",
            value=self.decide.coupon_key.secret_arn,
            description="The secret signing coupon codes: the shop's checkout verifies with it (README, Coupons)",
        )
        cdk.CfnOutput(
            self,
            "InboundSmsTopic",
            value=self.feedback_topics.inbound_sms.topic_arn,
            description="Point your number's two-way SMS here so STOP replies are honoured",
        )
        cdk.CfnOutput(
            self,
            "PushEventsTopic",
            value=self.feedback_topics.push_events.topic_arn,
            description="Set your SNS platform application's EventDeliveryFailure to this topic",
        )


def _trigger_delays(campaigns: Path) -> TriggerDelays:
    """Each trigger's delay from the approved campaigns, the policy's default zone and what the catalog campaigns
    need: what ingest arms triggers and records interests with."""
    zone = load_policy(campaigns).quiet_hours.default_time_zone
    return trigger_delays(check_creatives(load_campaigns(campaigns)), zone)
