"""cdk-nag findings we accept: each named by its exact evidence, scoped to where it occurs, with a reason that
names the actions it excuses.

cdk-nag's evidence for a wildcard grant is the resource (``Resource::*``), not the action, so an acknowledgement
alone would also excuse any action added on that resource later: its reason names the actions, and the grant tests
(``tests/infra/test_grants.py``) check that every action on a wildcard resource is one its acknowledgement names and
one of a short allow-list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import aws_cdk as cdk

if TYPE_CHECKING:
    from infra.stack import NextbestStack

BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
LOGS = {
    f"AwsSolutions-IAM4[{BASIC_EXECUTION}]": (
        "AWSLambdaBasicExecutionRole is AWS's minimal policy for a function writing its own logs."
    ),
}
TRACING = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
"""Active tracing (every function): X-Ray's actions have no resource-level permissions."""
SMS_OPT_OUT = ("sns:CheckIfPhoneNumberIsOptedOut",)
"""Deliver looks a number up in the account's SNS opt-out list before every text: the action has no resource."""
STREAMS = ("dynamodb:ListStreams",)
"""The tally's mapping reads the table's stream (CDK's grantStreamRead): listing streams has no resource."""
SCHEDULES = ("scheduler:CreateSchedule", "scheduler:UpdateSchedule")
PUSH_ENDPOINTS = ("sns:GetEndpointAttributes", "sns:SetEndpointAttributes", "sns:Publish")


def any_resource(actions: Sequence[str]) -> dict[str, str]:
    """``Resource::*`` on a role holding exactly ``actions`` on it."""
    return {
        "AwsSolutions-IAM5[Resource::*]": (
            f"Only {_named(actions)} on Resource::*: they have no resource-level permissions (X-Ray for active "
            "tracing; SNS's account-wide SMS opt-out list, looked up before every text; the list of DynamoDB "
            "streams, read by the tally's stream mapping)."
        ),
    }


def arming(schedule_group: str) -> dict[str, str]:
    arn = f"arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/{schedule_group}/*"
    return {
        f"AwsSolutions-IAM5[Resource::{arn}]": (
            f"Only {_named(SCHEDULES)} on every schedule of nextbest's own schedule group and nothing else: decide "
            "arms one schedule per decision quiet hours defer, whose names are data."
        ),
    }


def push(endpoints: str) -> dict[str, str]:
    return {
        f"AwsSolutions-IAM5[Resource::{endpoints}]": (
            f"Only {_named(PUSH_ENDPOINTS)} on every endpoint of nextbest's own platform application and nothing "
            "else: endpoints are created per device token at send time."
        ),
    }


SIGNING_KEY = {
    "AwsSolutions-SMG4": (
        "The unsubscribe signing key must keep verifying links already in customers' inboxes; it is rotated "
        "by hand with an overlap, not by an automatic rotation that would break every sent link at once."
    ),
}


ERASURE_KEY = {
    "AwsSolutions-SMG4": (
        "The erasure key names every tombstone (a keyed hash of an erased identifier): a new value would make the "
        "tombstones written before it unfindable and let erased people be learnt again, so it is never rotated."
    ),
}


COUPON_KEY = {
    "AwsSolutions-SMG4": (
        "The coupon key signs codes customers keep for weeks and the shop's checkout verifies with it: it is rotated "
        "by hand (the checkout trying the current key, then the previous one), never automatically."
    ),
}


FAILED_BATCHES = {
    "AwsSolutions-SQS3": (
        "The tally's failed-batch queue is the on-failure destination of its stream mapping: a dead-letter queue in "
        "all but name (SQS's redrive does not apply to a stream), read by people after its alarm, never consumed."
    ),
}


def reasons(schedule_group: str) -> dict[str, str]:
    """Every acknowledgement's rule and reason (deliver's, with push on, for the others' wording)."""
    return (
        LOGS
        | any_resource((*TRACING, *SMS_OPT_OUT))
        | arming(schedule_group)
        | push("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/*")
        | SIGNING_KEY
        | ERASURE_KEY
        | FAILED_BATCHES
    )


def acknowledge(stack: NextbestStack) -> None:
    _acknowledge(stack.unsubscribe.signing_key, SIGNING_KEY)
    _acknowledge(stack.ingest.erasure_key, ERASURE_KEY)
    _acknowledge(stack.tally.dead_letters, FAILED_BATCHES)
    _acknowledge(stack.decide.coupon_key, COUPON_KEY)
    extra = {stack.deliver.function.node.path: SMS_OPT_OUT, stack.tally.function.node.path: STREAMS}
    for function in stack.functions:
        _acknowledge(function, LOGS | any_resource((*TRACING, *extra.get(function.node.path, ()))))
    if stack.deliver.push_endpoints:
        _acknowledge(stack.deliver.function, push(stack.deliver.push_endpoints))
    _acknowledge(stack.decide.function, arming(stack.decide.schedule_group.schedule_group_name))


def _named(actions: Sequence[str]) -> str:
    return ", ".join(actions[:-1]) + f" and {actions[-1]}" if len(actions) > 1 else actions[0]


def _acknowledge(scope: cdk.Resource, reasons: dict[str, str]) -> None:
    for rule, reason in reasons.items():
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))
