"""The local emulation: the synthesized template, brought up on moto in this process.

Nothing here lists resources by hand. :class:`Emulation` reads ``nextbest.template.json`` and creates
what it declares (table, queues with their redrive policies, bus and rules, topic and subscription, SES
identity and configuration set), then does in-process what moto cannot:

* **event-source mappings** — polls each mapped queue in batches, invokes the function's handler from
  its synthesized asset with the environment the template gives it, deletes what succeeded, and makes
  reported failures visible again so SQS's own redrive moves them to the DLQ after ``maxReceiveCount``;
* **EventBridge Scheduler** — fires the one-time ``at(…)`` schedules that ingest arms, as the injectable
  clock passes their time, and deletes them afterwards as ``ActionAfterCompletion=DELETE`` asks;
* **SES event publishing** — turns every message moto recorded as sent into the events SES would
  publish to the configuration set's SNS destination, following the mailbox simulator addresses, and
  publishes the opens and clicks SES would track when told a recipient engaged (``publish_engagement``).

Function output (logs and EMF metrics) goes to one file per function, as CloudWatch would keep it.
"""

from __future__ import annotations

import contextlib
import email
import email.utils
import importlib.util
import io
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import boto3
from nextbest.aws import clients as aws
from nextbest.aws.scheduler import at_expression
from nextbest.core.clock import ManualClock

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Function:
    logical_id: str
    name: str
    environment: dict[str, str]
    handler_file: Path
    handler_name: str
    log: io.TextIOBase
    module: ModuleType | None = None
    invocations: int = 0
    records: int = 0
    aws_calls: Counter[str] = field(default_factory=Counter)
    """AWS API calls the function made, by ``service.Operation`` (counted by a botocore hook)."""


@dataclass
class Mapping:
    function: Function
    queue_url: str
    queue_arn: str
    batch_size: int
    partial_failures: bool


class Emulation:
    """One deployed nextbest, in moto. Use inside ``moto.mock_aws()``."""

    def __init__(self, cdk_out: Path, clock: ManualClock, logs: Path, stack: str = "nextbest") -> None:
        self.cdk_out = cdk_out
        self.clock = clock
        self.template: dict[str, Any] = json.loads((cdk_out / f"{stack}.template.json").read_text())
        self.stack = stack
        self.physical: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        self.functions: dict[str, Function] = {}
        self.mappings: list[Mapping] = []
        self.ses_destinations: dict[str, list[tuple[set[str], str]]] = {}
        self.logs = logs
        self.current: Function | None = None
        self.urls: dict[str, tuple[str, str]] = {}
        """Function URL logical id -> (URL, logical id of the function behind it)."""
        self._ses_seen = 0
        self._sent_by_decision: dict[str, tuple[Any, datetime]] = {}
        """Decision id -> the e-mail moto recorded for it and when, for the opens and clicks that follow."""
        self.ses_event_counts: dict[str, int] = {}
        self.recurring: dict[tuple[str, str], tuple[datetime, timedelta]] = {}
        """Recurring schedules: (group, name) -> (next fire, interval)."""

    # -- bring-up --------------------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    def of_type(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource["Type"] == kind:
                yield logical_id, resource.get("Properties", {})

    def deploy(self) -> Emulation:
        from infra.local import moto_speedups

        moto_speedups.install()
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        aws.reset()
        boto3.setup_default_session(region_name=REGION)
        boto3.DEFAULT_SESSION.events.register("before-call", self._count_call)  # type: ignore[union-attr]
        self.logs.mkdir(parents=True, exist_ok=True)
        self._tables()
        self._queues()
        self._topics()
        self._bus()
        self._ses()
        self._roles_and_groups()
        self._secrets_and_urls()
        self._functions()
        self._push_application()
        return self

    def client(self, service: str) -> Any:
        return aws.client(service)

    def _name(self, logical_id: str) -> str:
        return f"{self.stack}-{logical_id}"

    def _tables(self) -> None:
        ddb = self.client("dynamodb")
        for logical_id, props in self.of_type("AWS::DynamoDB::Table"):
            name = self._name(logical_id)
            kwargs: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": props["BillingMode"],
            }
            if props.get("GlobalSecondaryIndexes"):
                kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            ddb.create_table(**kwargs)
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            if props.get("PointInTimeRecoverySpecification"):
                ddb.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={
                        "PointInTimeRecoveryEnabled": props["PointInTimeRecoverySpecification"][
                            "PointInTimeRecoveryEnabled"
                        ]
                    },
                )
            self.physical[logical_id] = name
            self.arns[logical_id] = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"

    def _queues(self) -> None:
        sqs = self.client("sqs")
        queues = dict(self.of_type("AWS::SQS::Queue"))
        # Dead-letter queues first: a redrive policy names its target by ARN.
        order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q])
        for logical_id in order:
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

    def _roles_and_groups(self) -> None:
        for logical_id, _ in self.of_type("AWS::IAM::Role"):
            self.physical[logical_id] = self._name(logical_id)
            self.arns[logical_id] = f"arn:{PARTITION}:iam::{ACCOUNT}:role/{self._name(logical_id)}"
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
        import secrets

        for logical_id, props in self.of_type("AWS::SecretsManager::Secret"):
            length = props.get("GenerateSecretString", {}).get("PasswordLength", 32)
            arn = self.client("secretsmanager").create_secret(
                Name=self._name(logical_id), SecretString=secrets.token_urlsafe(length)[:length]
            )["ARN"]
            self.physical[logical_id] = self.arns[logical_id] = arn
        for logical_id, props in self.of_type("AWS::Lambda::Url"):
            target = props["TargetFunctionArn"]["Fn::GetAtt"][0]
            self.urls[logical_id] = (f"https://{target.lower()}.lambda-url.{REGION}.on.aws/", target)

    def call_url(self, url: str, method: str = "GET", body: str = "") -> dict[str, Any]:
        """Invoke the function behind a function URL as Lambda would (payload format 2.0)."""
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(url)
        [target] = [t for base, t in self.urls.values() if url.startswith(base)]
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": parts.path or "/",
            "rawQueryString": parts.query,
            "queryStringParameters": dict(parse_qsl(parts.query)) or None,
            "body": body,
            "isBase64Encoded": False,
            "headers": {"content-type": "application/x-www-form-urlencoded", "host": parts.netloc},
            "requestContext": {
                "http": {
                    "method": method,
                    "path": parts.path or "/",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "local",
                },
                "requestId": str(uuid.uuid4()),
                "stage": "$default",
                "domainName": parts.netloc,
            },
        }
        return dict(self.invoke(self.functions[target], event))

    def _functions(self) -> None:
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            props = resource["Properties"]
            env = {k: self.resolve(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
            env = {k: self.in_layers(props, v) for k, v in env.items()}
            asset = self.cdk_out / resource["Metadata"]["aws:asset:path"]
            module_file, handler_name = props["Handler"].rsplit(".", 1)
            name = env.get("POWERTOOLS_SERVICE_NAME", logical_id)
            log = (self.logs / f"{name}.log").open("w")
            self.functions[logical_id] = Function(logical_id, name, env, asset / f"{module_file}.py", handler_name, log)
            self.physical[logical_id] = name
        for _logical_id, props in self.of_type("AWS::Lambda::EventSourceMapping"):
            function = self.functions[props["FunctionName"]["Ref"]]
            queue_logical = props["EventSourceArn"]["Fn::GetAtt"][0]
            self.mappings.append(
                Mapping(
                    function,
                    self.physical[queue_logical],
                    self.arns[queue_logical],
                    min(int(props.get("BatchSize", 10)), 10),
                    "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )

    def _push_application(self) -> None:
        """The SNS platform application an operator creates by hand (CloudFormation has no such resource),
        wired as the README says: its delivery failures go to the stack's ``PushEventsTopic``."""
        configured = [f.environment.get("PUSH_PLATFORM_APPLICATION_ARN") for f in self.functions.values()]
        arn = next((a for a in configured if a), None)
        if not arn:
            return
        platform, name = arn.split(":app/", 1)[1].split("/", 1)
        attributes = {"PlatformCredential": "local", "PlatformPrincipal": "local"}
        if "PushEventsTopic" in self.template.get("Outputs", {}):
            attributes["EventDeliveryFailure"] = self.output("PushEventsTopic")
        created = self.client("sns").create_platform_application(Name=name, Platform=platform, Attributes=attributes)
        assert created["PlatformApplicationArn"] == arn, "give pushPlatformApplicationArn in moto's account/region"

    def sent_push(self) -> list[tuple[str, str]]:
        """(device token, JSON message) of every push moto's platform endpoints received."""
        from moto.sns.models import sns_backends

        endpoints = sns_backends[ACCOUNT][REGION].platform_endpoints.values()
        return [(e.token, m) for e in endpoints for m in e.messages.values()]

    def in_layers(self, function: dict[str, Any], value: Any) -> Any:
        """A path under ``/opt`` (where Lambda extracts layers) mapped to the synthesized asset of the
        function's layer that holds it, e.g. decide's ``MODELS_DIR=/opt/models``; other values unchanged.

        Layer *code* is not taken from the assets (it is built for arm64); the venv provides the packages.
        """
        if not isinstance(value, str) or not value.startswith("/opt/"):
            return value
        relative = value.removeprefix("/opt/")
        for layer in function.get("Layers", []):
            resource = self.resources[layer["Ref"]]
            candidate = self.cdk_out / resource["Metadata"]["aws:asset:path"] / relative
            if candidate.exists():
                return str(candidate)
        return value

    def resolve(self, value: Any) -> Any:
        """The subset of CloudFormation intrinsics our template uses."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            return {
                "AWS::AccountId": ACCOUNT,
                "AWS::Region": REGION,
                "AWS::Partition": PARTITION,
                "AWS::URLSuffix": "amazonaws.com",
            }.get(ref) or self.physical[ref]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if attribute == "Arn":
                return self.arns[logical_id]
            if attribute == "QueueName":
                return self.arns[logical_id].rsplit(":", 1)[-1]
            if attribute == "FunctionUrl":
                return self.urls[logical_id][0]
            raise KeyError(f"GetAtt {logical_id}.{attribute} is not emulated")
        if isinstance(value, dict) and "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.resolve(p)) for p in parts)
        raise ValueError(f"cannot resolve {value!r}")

    # -- running ---------------------------------------------------------------------------------------

    def flush_logs(self) -> None:
        for function in self.functions.values():
            function.log.flush()

    def output(self, name: str) -> str:
        return str(self.resolve(self.template["Outputs"][name]["Value"]))

    def environment(self, step: str) -> dict[str, str]:
        """The resolved environment of the function for a pipeline step (``ingest``, ``decide``…)."""
        return next(f.environment for f in self.functions.values() if f.name == step)

    def _count_call(self, event_name: str, **kwargs: Any) -> None:
        if self.current is not None:
            _, service, operation = event_name.split(".", 2)
            self.current.aws_calls[f"{service}.{operation}"] += 1

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        function.records += len(event.get("Records", []))
        with self._as(function):
            if function.module is None:
                spec = importlib.util.spec_from_file_location(f"lambda_{function.logical_id}", function.handler_file)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                function.module = module
            function.invocations += 1
            return getattr(function.module, function.handler_name)(event, LambdaContext(function.name))

    @contextlib.contextmanager
    def _as(self, function: Function) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in function.environment}
        os.environ.update(function.environment)
        self.current = function
        try:
            with contextlib.redirect_stdout(function.log):  # type: ignore[type-var]
                yield
        finally:
            self.current = None
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def visible(self, mapping: Mapping) -> int:
        """Visible messages in a queue, read from moto's model: a cheap look before an API poll."""
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[ACCOUNT][REGION].queues[mapping.queue_arn.rsplit(":", 1)[-1]]
        return int(queue.approximate_number_of_messages)

    def poll(self, mapping: Mapping) -> int:
        """One event-source-mapping poll: receive a batch, invoke, settle. Returns messages received."""
        if not self.visible(mapping):
            return 0
        sqs = self.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=mapping.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [_sqs_record(m, mapping.queue_arn) for m in messages]}
        try:
            response = self.invoke(mapping.function, event) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as error:  # the whole batch failed, exactly as Lambda would report it
            print(f"{type(error).__name__}: {error}", file=mapping.function.log)
            failed = {m["MessageId"] for m in messages}
        if not mapping.partial_failures and failed:
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        for m in messages:
            if m["MessageId"] in failed:
                # Emulated time is compressed: the visibility timeout has "passed" by the next poll.
                sqs.change_message_visibility(
                    QueueUrl=mapping.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
        return len(messages)

    def drain(self, max_rounds: int = 10_000) -> int:
        """Run every mapping until no queue has work left (and SES has published what it would)."""
        total = 0
        for _ in range(max_rounds):
            moved = sum(self.poll(m) for m in self.mappings)
            moved += self.publish_ses_events()
            total += moved
            if moved == 0:
                return total
        raise RuntimeError("the pipeline did not settle; a message is cycling")

    def advance(self, to: datetime) -> None:
        """Move time forward to ``to``, firing each one-time schedule when its time comes."""
        while True:
            due = self.due_schedules(to)
            if not due:
                break
            at = due[0][0]
            self.clock.set(max(self.clock.now(), at))
            for when, group, schedule in due:
                if when == at:
                    self.fire(group, schedule)
            self.drain()
        self.clock.set(max(self.clock.now(), to))

    def due_schedules(self, until: datetime) -> list[tuple[datetime, str, Any]]:
        from moto.scheduler.models import scheduler_backends

        due = []
        for group in scheduler_backends[ACCOUNT][REGION].schedule_groups.values():
            for schedule in group.schedules.values():
                when = self._next_fire(group.name, schedule)
                if when <= until and schedule.state != "DISABLED":
                    due.append((when, group.name, schedule))
        return sorted(due, key=lambda d: (d[0], d[2].name))

    def _next_fire(self, group: str, schedule: Any) -> datetime:
        """``at(…)`` fires once; ``rate(n unit)`` every n units from when the emulation came up."""
        expression = schedule.schedule_expression
        if not expression.startswith("rate("):
            return at_expression(expression)
        key = (group, schedule.name)
        if key not in self.recurring:
            amount, unit = expression[5:-1].split()
            seconds = int(amount) * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
            self.recurring[key] = (self.clock.now() + timedelta(seconds=seconds), timedelta(seconds=seconds))
        return self.recurring[key][0]

    def fire(self, group: str, schedule: Any) -> None:
        target = schedule.target
        url = self.physical[next(k for k, v in self.arns.items() if v == target["Arn"])]
        scheduled = self._next_fire(group, schedule)
        body = target.get("Input", "{}").replace("<aws.scheduler.scheduled-time>", scheduled.isoformat())
        self.client("sqs").send_message(QueueUrl=url, MessageBody=body)
        if (group, schedule.name) in self.recurring:
            self.recurring[(group, schedule.name)] = (scheduled + self.recurring[(group, schedule.name)][1],
                                                      self.recurring[(group, schedule.name)][1])  # fmt: skip
        elif getattr(schedule, "action_after_completion", "NONE") == "DELETE":
            self.client("scheduler").delete_schedule(Name=schedule.name, GroupName=group)
        else:
            schedule.state = "DISABLED"

    # -- SES event publishing --------------------------------------------------------------------------

    def sent_emails(self) -> list[Any]:
        from moto.ses.models import ses_backends

        return list(ses_backends[ACCOUNT][REGION].sent_messages)

    def sent_sms(self) -> list[tuple[str, str, str]]:
        from moto.sns.models import sns_backends

        return [(mid, phone, text) for mid, (phone, text) in sns_backends[ACCOUNT][REGION].sms_messages.items()]

    def publish_ses_events(self) -> int:
        sent = self.sent_emails()
        published = 0
        for message in sent[self._ses_seen :]:
            published += self._publish_for(message)
        self._ses_seen = len(sent)
        return published

    def _publish_for(self, message: Any) -> int:
        raw = getattr(message, "raw_data", None)
        if raw is None:
            return 0
        mail = email.message_from_string(raw)
        destinations, tags = self._destinations(mail)
        if not destinations:
            return 0
        for decision_id in tags.get("decision_id", []):
            self._sent_by_decision[decision_id] = (message, self.clock.now())
        published = 0
        for recipient in recipients(message):
            for event in simulate_mailbox(recipient, message.id, message.source, tags, mail, self.clock.now()):
                kind = event["eventType"]
                self.ses_event_counts[kind] = self.ses_event_counts.get(kind, 0) + 1
                published += self._publish_ses_event(event, destinations)
        return published

    def _destinations(self, mail: email.message.Message) -> tuple[list[tuple[set[str], str]], dict[str, list[str]]]:
        """The SNS destinations of the e-mail's configuration set, and the tags SES puts on its events."""
        config = mail.get("X-SES-CONFIGURATION-SET")
        tags: dict[str, list[str]] = {"ses:configuration-set": [config or ""]}
        for pair in (mail.get("X-SES-MESSAGE-TAGS") or "").split(","):
            if "=" in pair:
                name, value = pair.split("=", 1)
                tags[name.strip()] = [value.strip()]
        return self.ses_destinations.get(config or "", []), tags

    def _publish_ses_event(self, event: dict[str, Any], destinations: list[tuple[set[str], str]]) -> int:
        published = 0
        for wanted, topic in destinations:
            if _event_key(event["eventType"]) in wanted:
                self.client("sns").publish(TopicArn=topic, Message=json.dumps(event))
                published += 1
        return published

    def publish_engagement(self, decision_id: str, kind: Literal["Open", "Click"], at: datetime, link: str = "") -> int:
        """What SES publishes when the recipient of the e-mail sent for ``decision_id`` opens it or clicks a link
        in it, at ``at`` (SES tracks both with a pixel and redirected links; the mailbox simulator never does)."""
        sent = self._sent_by_decision.get(decision_id)
        if sent is None:
            return 0
        message, sent_at = sent
        mail = email.message_from_string(message.raw_data)
        destinations, tags = self._destinations(mail)
        published = 0
        for recipient in recipients(message):
            event = engagement(kind, recipient, message.id, message.source, tags, mail, sent_at, at, link)
            self.ses_event_counts[kind] = self.ses_event_counts.get(kind, 0) + 1
            published += self._publish_ses_event(event, destinations)
        return published


def recipients(message: Any) -> list[str]:
    """The addresses a message recorded by moto went to, once each.

    moto appends the raw message's To/Cc headers to the explicit destinations (SES uses the destinations
    alone), so the same address can appear twice.
    """
    return list(dict.fromkeys(addr.lower() for _, addr in email.utils.getaddresses(message.destinations) if addr))


def _event_key(event_type: str) -> str:
    return {"Rendering Failure": "renderingfailure", "DeliveryDelay": "deliverydelay"}.get(
        event_type, event_type.lower()
    )


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _mail_object(
    recipient: str,
    message_id: str,
    source: str,
    tags: dict[str, list[str]],
    mail: email.message.Message,
    sent: datetime,
) -> dict[str, Any]:
    """The ``mail`` object every SES event of one message carries (when it was sent, to whom, its tags)."""
    return {
        "timestamp": _stamp(sent),
        "source": source,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{source}",
        "sendingAccountId": ACCOUNT,
        "messageId": message_id,
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": k, "value": v} for k, v in mail.items() if not k.upper().startswith("X-SES-")],
        "commonHeaders": {
            "from": [source],
            "to": [recipient],
            "messageId": message_id,
            "subject": mail.get("Subject", ""),
        },
        "tags": tags,
    }


def engagement(
    kind: Literal["Open", "Click"],
    recipient: str,
    message_id: str,
    source: str,
    tags: dict[str, list[str]],
    mail: email.message.Message,
    sent: datetime,
    at: datetime,
    link: str = "",
) -> dict[str, Any]:
    """An SES ``Open`` or ``Click`` event, in SES event-publishing format."""
    detail: dict[str, Any] = {"ipAddress": "192.0.2.1", "timestamp": _stamp(at), "userAgent": "Mozilla/5.0"}
    if kind == "Click":
        detail |= {"link": link, "linkTags": {}}
    return {
        "eventType": kind,
        "mail": _mail_object(recipient, message_id, source, tags, mail, sent),
        kind.lower(): detail,
    }


def simulate_mailbox(
    recipient: str, message_id: str, source: str, tags: dict[str, list[str]], mail: email.message.Message, now: datetime
) -> list[dict[str, Any]]:
    """The SES events the mailbox simulator produces for ``recipient``, in SES event-publishing format.

    ``success@``, ``bounce@``, ``complaint@``, ``suppressionlist@`` and ``ooto@simulator.amazonses.com``
    (with optional ``+label``) behave as documented; any other address is treated as a plain delivery.
    """
    stamp = _stamp(now)
    local, _, domain = recipient.lower().partition("@")
    scenario = local.split("+", 1)[0] if domain == "simulator.amazonses.com" else "success"
    common = _mail_object(recipient, message_id, source, tags, mail, now)
    events: list[dict[str, Any]] = [{"eventType": "Send", "mail": common, "send": {}}]
    delivery = {
        "eventType": "Delivery",
        "mail": common,
        "delivery": {
            "timestamp": stamp,
            "processingTimeMillis": 420,
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
    }
    if scenario in ("bounce", "suppressionlist"):
        events.append(
            {
                "eventType": "Bounce",
                "mail": common,
                "bounce": {
                    "bounceType": "Permanent",
                    "bounceSubType": "OnAccountSuppressionList" if scenario == "suppressionlist" else "General",
                    "bouncedRecipients": [
                        {
                            "emailAddress": recipient,
                            "action": "failed",
                            "status": "5.1.1",
                            "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                        }
                    ],
                    "timestamp": stamp,
                    "feedbackId": f"{uuid.uuid4()}-000000",
                    "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
                },
            }
        )
    elif scenario == "complaint":
        events.append(delivery)
        events.append(
            {
                "eventType": "Complaint",
                "mail": common,
                "complaint": {
                    "complainedRecipients": [{"emailAddress": recipient}],
                    "timestamp": stamp,
                    "feedbackId": f"{uuid.uuid4()}-000000",
                    "userAgent": "Amazon SES Mailbox Simulator",
                    "complaintFeedbackType": "abuse",
                    "arrivalDate": stamp,
                },
            }
        )
    else:
        events.append(delivery)
    return events


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
            for k, v in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
