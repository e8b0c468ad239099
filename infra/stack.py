"""The nextbest stack: bus → ingest → profiles → decide → deliver → SES/SNS → feedback."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from constructs import Construct
from nextbest.core.campaigns import load_campaigns, trigger_delays

from infra.constructs import Decisioning, Delivery, EventIngestion, Feedback, ProfileStore, Shared
from infra.observability import Observability


class NextbestStack(cdk.Stack):
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
        delays = {k: int(v.total_seconds()) for k, v in trigger_delays(load_campaigns(campaigns)).items()}
        shared = Shared(self, "Shared")
        store = ProfileStore(self, "ProfileStore")
        feedback = Feedback(self, "Feedback", shared)
        self.delivery = Delivery(
            self,
            "Delivery",
            shared,
            store.table,
            sender,
            feedback.topic,
            push_application_arn=str(self.node.try_get_context("pushPlatformApplicationArn") or ""),
            sms_events=feedback.sms_events if self.node.try_get_context("smsVia") == "end-user-messaging" else None,
        )
        self.decisioning = Decisioning(
            self, "Decisioning", shared, store.table, self.delivery.queue, site_url, campaigns
        )
        self.ingestion = EventIngestion(self, "EventIngestion", shared, store.table, bus_name, delays, self.decisioning)
        feedback.attach(shared, store.table, self.delivery.queue)
        self.store, self.feedback = store, feedback
        self.functions = [
            self.delivery.unsubscribe,
            self.ingestion.function,
            self.decisioning.function,
            self.delivery.function,
            feedback.function,
        ]
        self.observability = Observability(
            self,
            "Observability",
            ingestion=self.ingestion,
            decisioning=self.decisioning,
            delivery=self.delivery,
            feedback=feedback,
        )
        cdk.CfnOutput(self, "BusName", value=self.ingestion.bus.event_bus_name)
        cdk.CfnOutput(
            self,
            "OpsTopic",
            value=self.observability.topic.topic_arn,
            description="Every alarm notifies this topic; subscribe your on-call here (or deploy -c opsEmail=…)",
        )
        cdk.CfnOutput(self, "TableName", value=store.table.table_name)
        cdk.CfnOutput(
            self,
            "InboundSmsTopic",
            value=feedback.inbound_sms.topic_arn,
            description="Point your number's two-way SMS here so STOP replies are honoured",
        )
        cdk.CfnOutput(
            self,
            "PushEventsTopic",
            value=feedback.push_events.topic_arn,
            description="Set your SNS platform application's EventDeliveryFailure to this topic",
        )
