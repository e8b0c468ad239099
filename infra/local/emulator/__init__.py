"""The local emulation: the synthesized template, brought up on moto in this process.

Nothing here lists resources by hand. :class:`Emulation` reads ``nextbest.template.json``, creates what it
declares (``provisioning``), then does in-process what moto cannot:

* **the Lambda runtime** (``runtime``) — runs each function's handler from its synthesized asset with the
  environment the template gives it, its output in one log file per function;
* **event-source mappings** (``event_sources``) — polls each mapped queue in batches, invokes the function,
  deletes what succeeded, and makes reported failures visible again so SQS's own redrive moves them to the
  DLQ after ``maxReceiveCount``;
* **SQS delays** (``event_sources.Delays``) — a message sent with ``DelaySeconds`` becomes visible when the
  emulated clock reaches its time, not after real seconds;
* **EventBridge Scheduler** (``scheduler``) — fires the one-time ``at(…)`` schedules decide arms as the
  injectable clock passes their time, and the minute's poll of the due index;
* **SES event publishing** (``ses``) — turns every message moto recorded as sent into the events SES would
  publish to the configuration set's SNS destination, following the mailbox simulator addresses, and
  publishes the opens and clicks SES would track when told a recipient engaged (``publish_engagement``);
* **metering** (``metering``) — what each function's requests would be billed: DynamoDB capacity units by
  DynamoDB's rules, and every other call by service and target (``make bench``).

Given :class:`~infra.local.emulator.faults.Faults`, it also misbehaves as AWS does (``faults``): errors and
ambiguous timeouts from the APIs the functions call, and duplicate, late, concurrent and crashed deliveries
from the event sources.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore
from nextbest.aws import clients as aws
from nextbest.core.clock import ManualClock

from infra.local.emulator import grants
from infra.local.emulator.account import ACCOUNT, PARTITION, REGION
from infra.local.emulator.event_sources import Delays, EventSources, Mapping, sqs_record
from infra.local.emulator.faults import Faults
from infra.local.emulator.metering import Metering
from infra.local.emulator.provisioning import Deployment
from infra.local.emulator.runtime import Function, LambdaContext, LambdaRuntime
from infra.local.emulator.scheduler import Scheduler
from infra.local.emulator.ses import SesSimulator, engagement, recipients, simulate_mailbox

_sqs_record = sqs_record  # the name tests/integration imports

__all__ = [
    "ACCOUNT",
    "PARTITION",
    "REGION",
    "Emulation",
    "Faults",
    "Function",
    "LambdaContext",
    "Mapping",
    "engagement",
    "recipients",
    "simulate_mailbox",
    "sqs_record",
]


def unsigned(**kwargs: Any) -> Any:
    """The signature version of every request (botocore's ``choose-signer`` event): none. moto checks no signature;
    it reads the region from the endpoint's URL and, with no access key in the request, uses its default account,
    which is the emulation's. Signing cost a twentieth of the demo's time and proved nothing."""
    return botocore.UNSIGNED


class Emulation:
    """One deployed nextbest, in moto. Use inside ``moto.mock_aws()``."""

    def __init__(
        self,
        cdk_out: Path,
        clock: ManualClock,
        logs: Path,
        stack: str = "nextbest",
        faults: Faults | None = None,
        metered: bool = True,
    ) -> None:
        self.clock = clock
        self.logs = logs
        self.faults = faults
        self.deployment = Deployment(cdk_out, stack)
        self.runtime = LambdaRuntime(self.deployment, logs)
        self.event_sources = EventSources(self.deployment, self.runtime, faults, clock)
        self.delays = Delays(clock)
        """Messages sent with ``DelaySeconds``, made visible as the emulated clock passes their time."""
        self.scheduler = Scheduler(self.deployment, clock)
        self.ses = SesSimulator(self.deployment, clock)
        self.metering = Metering(self.runtime)
        """Capacity units and calls of every request, per function (``make bench`` reads it); empty unless
        ``metered`` (reading each written item before and after its write costs a few percent of a run)."""
        self.metered = metered
        self.event_sources.requests = self.scheduler.requests = self.ses.requests = self.metering.count
        # What was deployed, by logical id (shared with the parts, not copies).
        self.template = self.deployment.template
        self.physical = self.deployment.physical
        self.arns = self.deployment.arns
        self.functions = self.runtime.functions
        self.mappings = self.event_sources.mappings
        self.ses_event_counts = self.ses.event_counts
        self.sent_at: dict[str, list[datetime]] = {"email": [], "sms": []}
        """The emulated time each message moto recorded was sent at, in moto's order, per channel."""

    def deploy(self) -> Emulation:
        from infra.local import moto_speedups

        moto_speedups.install()
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        aws.reset()
        boto3.setup_default_session(region_name=REGION)
        boto3.DEFAULT_SESSION.events.register("choose-signer", unsigned)  # type: ignore[union-attr]
        self.runtime.count_calls()  # before any client exists
        self.delays.install(boto3.DEFAULT_SESSION)
        if self.metered:
            self.metering.install()
        if self.faults is not None:
            self.faults.install(boto3.DEFAULT_SESSION, self.runtime)
        self.runtime.after_invoke.append(self._stamp_sends)
        self.deployment.create()
        self.runtime.load()
        self.event_sources.load()
        configured = [f.environment.get("PUSH_PLATFORM_APPLICATION_ARN") for f in self.functions.values()]
        if push := next((arn for arn in configured if arn), None):
            self.deployment.create_push_application(push)
        return self

    # -- running ---------------------------------------------------------------------------------------

    def drain(self, max_rounds: int = 10_000, close_windows: bool = True) -> int:
        """Run every mapping until no queue has work left (and SES has published what it would), then the stream
        mappings on what that work wrote. A stream batch is handed when its batching window has closed on the
        emulated clock; with ``close_windows`` (a test waiting for everything to settle) every batch being
        gathered is handed once the queues are quiet, as if its window had passed with nothing more written.
        The demo passes False, so that the tally's batches are what Lambda's poller would gather."""
        total = 0
        for _ in range(max_rounds):
            moved = self.event_sources.poll_all() + self.ses.publish_events()
            moved = moved or self.event_sources.poll_streams(close=close_windows)
            total += moved
            if moved == 0:
                return total
        raise RuntimeError("the pipeline did not settle; a message is cycling")

    def advance(self, to: datetime, close_windows: bool = True) -> None:
        """Move time forward to ``to``, firing each schedule, releasing each delayed message and handing each
        stream batch when its time comes, and draining after each (``close_windows``: see :meth:`drain`)."""
        while True:
            due = self.scheduler.due(to)
            times = [due[0][0] if due else None, self.delays.next_due(to), self.event_sources.next_window(to)]
            if not (found := [t for t in times if t is not None]):
                break
            at = min(found)
            self.clock.set(max(self.clock.now(), at))
            for when, group, schedule in due:
                if when == at:
                    self.scheduler.fire(group, schedule)
            self.delays.release(at)
            self.drain(close_windows=close_windows)
        self.clock.set(max(self.clock.now(), to))

    def client(self, service: str) -> Any:
        return self.deployment.client(service)

    def output(self, name: str) -> str:
        return self.deployment.output(name)

    def environment(self, step: str) -> dict[str, str]:
        """The resolved environment of the function for a pipeline step (``ingest``, ``decide``…)."""
        return self.runtime.environment(step)

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        return self.runtime.invoke(function, event)

    def call_url(self, url: str, method: str = "GET", body: str = "") -> dict[str, Any]:
        """Invoke the function behind a function URL as Lambda would (payload format 2.0)."""
        return self.runtime.call_url(url, method, body)

    def poll(self, mapping: Mapping) -> int:
        return self.event_sources.poll(mapping)

    def due_schedules(self, until: datetime) -> list[tuple[datetime, str, Any]]:
        return self.scheduler.due(until)

    def flush_logs(self) -> None:
        self.runtime.flush_logs()

    def ungranted_requests(self) -> dict[str, list[grants.Request]]:
        """Per function, the DynamoDB requests it made that its role in the template does not allow: moto does
        not enforce IAM, so the tests ask this instead."""
        found = {
            f.name: grants.ungranted(self.deployment, f.logical_id, f.dynamodb_requests)
            for f in self.functions.values()
        }
        return {name: requests for name, requests in found.items() if requests}

    # -- what was sent ---------------------------------------------------------------------------------

    def _stamp_sends(self) -> None:
        """Stamp what moto recorded as sent during an invocation with the emulated time (it does not move while
        a function runs)."""
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        counts = {
            "email": len(ses_backends[ACCOUNT][REGION].sent_messages),
            "sms": len(sns_backends[ACCOUNT][REGION].sms_messages),
        }
        for channel, count in counts.items():
            stamps = self.sent_at[channel]
            stamps.extend([self.clock.now()] * (count - len(stamps)))

    def sent_emails(self) -> list[Any]:
        return self.ses.sent_emails()

    def publish_engagement(self, decision_id: str, kind: Literal["Open", "Click"], at: datetime, link: str = "") -> int:
        """What SES publishes when the recipient of the e-mail sent for ``decision_id`` opens it or clicks it."""
        return self.ses.publish_engagement(decision_id, kind, at, link)

    def sent_sms(self) -> list[tuple[str, str, str]]:
        from moto.sns.models import sns_backends

        return [(mid, phone, text) for mid, (phone, text) in sns_backends[ACCOUNT][REGION].sms_messages.items()]

    def sent_push(self) -> list[tuple[str, str]]:
        """(device token, JSON message) of every push moto's platform endpoints received."""
        from moto.sns.models import sns_backends

        endpoints = sns_backends[ACCOUNT][REGION].platform_endpoints.values()
        return [(e.token, m) for e in endpoints for m in e.messages.values()]
