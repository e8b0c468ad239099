"""The template interpreter: every resource the synthesized template declares, created in moto, and the
subset of CloudFormation's intrinsic functions the template uses, resolved against what was created.

Table, queues with their redrive policies, bus and rules, topics and subscriptions, SES identity and
configuration set, roles, schedule groups and schedules, secrets and function URLs; nothing is listed by hand.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nextbest.aws import clients as aws

from infra.local.emulator.account import ACCOUNT, PARTITION, REGION

PSEUDO_PARAMETERS = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
}

SesDestinations = dict[str, list[tuple[set[str], str]]]
"""Configuration set name -> (event types, lower case; SNS topic ARN) of each of its SNS destinations."""


class Deployment:
    """One stack's template, deployed in moto: logical ids mapped to what moto created."""

    def __init__(self, cdk_out: Path, stack: str = "nextbest") -> None:
        self.cdk_out = cdk_out
        self.stack = stack
        self.template: dict[str, Any] = json.loads((cdk_out / f"{stack}.template.json").read_text())
        self.physical: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        self.streams: dict[str, str] = {}
        """The stream ARN of each table that has one, by logical id."""
        self.urls: dict[str, tuple[str, str]] = {}
        """Function URL logical id -> (URL, logical id of the function behind it)."""
        self.ses_destinations: SesDestinations = {}

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    def of_type(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource["Type"] == kind:
                yield logical_id, resource.get("Properties", {})

    def client(self, service: str) -> Any:
        return aws.client(service)

    def create(self) -> None:
        """Every resource, in an order where what a resource names already exists."""
        self._tables()
        self._queues()
        self._topics()
        self._bus()
        self._ses()
        self._roles()
        self._schedules()
        self._secrets_and_urls()

    def _name(self, logical_id: str) -> str:
        return f"{self.stack}-{logical_id}"

    def _tables(self) -> None:
        for logical_id, props in self.of_type("AWS::DynamoDB::Table"):
            name = self._name(logical_id)
            stream = self._table(name, props)
            if stream:
                self.streams[logical_id] = stream
            self.physical[logical_id] = name
            self.arns[logical_id] = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"

    def _table(self, name: str, props: dict[str, Any]) -> str | None:
        """Create a table; the ARN of its stream, if it has one."""
        ddb = self.client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props["BillingMode"],
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        stream = ddb.create_table(**kwargs)["TableDescription"].get("LatestStreamArn")
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        recovery = props.get("PointInTimeRecoverySpecification")
        if recovery:
            ddb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": recovery["PointInTimeRecoveryEnabled"]},
            )
        return str(stream) if stream else None

    def _queues(self) -> None:
        sqs = self.client("sqs")
        queues = dict(self.of_type("AWS::SQS::Queue"))
        # Dead-letter queues first: a redrive policy names its target by ARN.
        for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in queues[q]):
            props = queues[logical_id]
            attributes: dict[str, str] = {
                k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod") if k in props
            }
            if "RedrivePolicy" in props:
                policy = props["RedrivePolicy"]
                attributes["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": self.resolve(policy["deadLetterTargetArn"]),
                        "maxReceiveCount": policy["maxReceiveCount"],
                    }
                )
            name = self._name(logical_id)
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            self.physical[logical_id] = url
            self.arns[logical_id] = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}"

    def _topics(self) -> None:
        sns = self.client("sns")
        for logical_id, _ in self.of_type("AWS::SNS::Topic"):
            arn = sns.create_topic(Name=self._name(logical_id))["TopicArn"]
            self.physical[logical_id] = self.arns[logical_id] = arn
        for _logical_id, props in self.of_type("AWS::SNS::Subscription"):
            attributes = {"RawMessageDelivery": "true"} if props.get("RawMessageDelivery") else {}
            sns.subscribe(
                TopicArn=self.resolve(props["TopicArn"]),
                Protocol=props["Protocol"],
                Endpoint=self.resolve(props["Endpoint"]),
                Attributes=attributes,
            )

    def _bus(self) -> None:
        events = self.client("events")
        for logical_id, props in self.of_type("AWS::Events::EventBus"):
            events.create_event_bus(Name=props["Name"])
            self.physical[logical_id] = props["Name"]
            self.arns[logical_id] = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{props['Name']}"
        for logical_id, props in self.of_type("AWS::Events::Rule"):
            bus = self.resolve(props.get("EventBusName", "default"))
            name = self._name(logical_id)
            events.put_rule(
                Name=name,
                EventBusName=bus,
                EventPattern=json.dumps(props["EventPattern"]),
                State=props.get("State", "ENABLED"),
            )
            events.put_targets(
                Rule=name,
                EventBusName=bus,
                Targets=[{"Id": t["Id"], "Arn": self.resolve(t["Arn"])} for t in props["Targets"]],
            )

    def _ses(self) -> None:
        ses = self.client("sesv2")
        for logical_id, _ in self.of_type("AWS::SES::ConfigurationSet"):
            name = self._name(logical_id)
            ses.create_configuration_set(ConfigurationSetName=name)
            self.physical[logical_id] = name
        for _logical_id, props in self.of_type("AWS::SES::ConfigurationSetEventDestination"):
            destination = props["EventDestination"]
            if destination.get("Enabled", True) and "SnsDestination" in destination:
                self.ses_destinations.setdefault(self.resolve(props["ConfigurationSetName"]), []).append(
                    (
                        {t.lower() for t in destination["MatchingEventTypes"]},
                        self.resolve(destination["SnsDestination"]["TopicARN"]),
                    )
                )
        for logical_id, props in self.of_type("AWS::SES::EmailIdentity"):
            identity = props["EmailIdentity"]
            ses.create_email_identity(EmailIdentity=identity)
            self.client("ses").verify_email_identity(EmailAddress=identity)
            self.physical[logical_id] = identity

    def _roles(self) -> None:
        for logical_id, _ in self.of_type("AWS::IAM::Role"):
            self.physical[logical_id] = self._name(logical_id)
            self.arns[logical_id] = f"arn:{PARTITION}:iam::{ACCOUNT}:role/{self._name(logical_id)}"

    def _schedules(self) -> None:
        for logical_id, props in self.of_type("AWS::Scheduler::ScheduleGroup"):
            self.client("scheduler").create_schedule_group(Name=props["Name"])
            self.physical[logical_id] = props["Name"]
        for logical_id, props in self.of_type("AWS::Scheduler::Schedule"):
            target = props["Target"]
            name = props.get("Name") or self._name(logical_id)
            self.client("scheduler").create_schedule(
                Name=name,
                GroupName=self.resolve(props.get("GroupName", "default")),
                ScheduleExpression=props["ScheduleExpression"],
                FlexibleTimeWindow=props["FlexibleTimeWindow"],
                State=props.get("State", "ENABLED"),
                Target={"Arn": self.resolve(target["Arn"]), "RoleArn": self.resolve(target["RoleArn"]),
                        "Input": target.get("Input", "{}")},
            )  # fmt: skip
            self.physical[logical_id] = name

    def _secrets_and_urls(self) -> None:
        for logical_id, props in self.of_type("AWS::SecretsManager::Secret"):
            length = props.get("GenerateSecretString", {}).get("PasswordLength", 32)
            arn = self.client("secretsmanager").create_secret(
                Name=self._name(logical_id), SecretString=secrets.token_urlsafe(length)[:length]
            )["ARN"]
            self.physical[logical_id] = self.arns[logical_id] = arn
        for logical_id, props in self.of_type("AWS::Lambda::Url"):
            target = props["TargetFunctionArn"]["Fn::GetAtt"][0]
            self.urls[logical_id] = (f"https://{target.lower()}.lambda-url.{REGION}.on.aws/", target)

    def create_push_application(self, arn: str) -> None:
        """The SNS platform application an operator creates by hand (CloudFormation has no such resource),
        wired as the README says: its delivery failures go to the stack's ``PushEventsTopic``."""
        platform, name = arn.split(":app/", 1)[1].split("/", 1)
        attributes = {"PlatformCredential": "local", "PlatformPrincipal": "local"}
        if "PushEventsTopic" in self.template.get("Outputs", {}):
            attributes["EventDeliveryFailure"] = self.output("PushEventsTopic")
        created = self.client("sns").create_platform_application(Name=name, Platform=platform, Attributes=attributes)
        assert created["PlatformApplicationArn"] == arn, "give pushPlatformApplicationArn in moto's account/region"

    def output(self, name: str) -> str:
        return str(self.resolve(self.template["Outputs"][name]["Value"]))

    def resolve(self, value: Any) -> Any:
        """The subset of CloudFormation intrinsics our template uses."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "Ref" in value:
            return PSEUDO_PARAMETERS.get(value["Ref"]) or self.physical[value["Ref"]]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return self._attribute(*value["Fn::GetAtt"])
        if isinstance(value, dict) and "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.resolve(p)) for p in parts)
        raise ValueError(f"cannot resolve {value!r}")

    def _attribute(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arns[logical_id]
        if attribute == "StreamArn":
            return self.streams[logical_id]
        if attribute == "QueueName":
            return self.arns[logical_id].rsplit(":", 1)[-1]
        if attribute == "FunctionUrl":
            return self.urls[logical_id][0]
        raise KeyError(f"GetAtt {logical_id}.{attribute} is not emulated")

    def in_layers(self, function: dict[str, Any], value: Any) -> Any:
        """A path under ``/opt`` (where Lambda extracts layers) mapped to the synthesized asset of the
        function's layer that holds it, e.g. decide's ``MODELS_DIR=/opt/models``; other values unchanged.

        Layer *code* is not taken from the assets (it is built for arm64); the venv provides the packages.
        """
        if not isinstance(value, str) or not value.startswith("/opt/"):
            return value
        relative = value.removeprefix("/opt/")
        for layer in function.get("Layers", []):
            candidate = self.asset(layer["Ref"]) / relative
            if candidate.exists():
                return str(candidate)
        return value

    def asset(self, logical_id: str) -> Path:
        """The synthesized asset (function code or layer) of a resource."""
        return self.cdk_out / self.resources[logical_id]["Metadata"]["aws:asset:path"]
