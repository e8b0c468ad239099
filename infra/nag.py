"""cdk-nag findings we accept: each named by its exact evidence, scoped to where it occurs, with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk

if TYPE_CHECKING:
    from infra.stack import NextbestStack

BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
EVERY_FUNCTION = {
    f"AwsSolutions-IAM4[{BASIC_EXECUTION}]": (
        "AWSLambdaBasicExecutionRole is AWS's minimal policy for a function writing its own logs."
    ),
    "AwsSolutions-IAM5[Resource::*]": (
        "X-Ray's PutTraceSegments/PutTelemetryRecords (and, for deliver, SNS CheckIfPhoneNumberIsOptedOut) "
        "have no resource-level permissions."
    ),
}


def arming(schedule_group: str) -> dict[str, str]:
    arn = f"arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/{schedule_group}/*"
    return {
        f"AwsSolutions-IAM5[Resource::{arn}]": (
            "Ingest and decide arm one schedule per customer and trigger (decide: follow-ups and quiet-hour "
            "deferrals); names are data, so the grant is every schedule of nextbest's own schedule group "
            "and nothing else."
        ),
    }


def reasons(schedule_group: str) -> dict[str, str]:
    return EVERY_FUNCTION | arming(schedule_group) | SIGNING_KEY


SIGNING_KEY = {
    "AwsSolutions-SMG4": (
        "The unsubscribe signing key must keep verifying links already in customers' inboxes; it is rotated "
        "by hand with an overlap, not by an automatic rotation that would break every sent link at once."
    ),
}


def acknowledge(stack: NextbestStack) -> None:
    _acknowledge(stack.unsubscribe.signing_key, SIGNING_KEY)
    for function in stack.functions:
        _acknowledge(function, EVERY_FUNCTION)
    if stack.deliver.push_endpoints:
        _acknowledge(
            stack.deliver.function,
            {
                f"AwsSolutions-IAM5[Resource::{stack.deliver.push_endpoints}]": (
                    "Endpoints are created per device token at send time; the grant is every endpoint of "
                    "nextbest's own platform application and nothing else."
                )
            },
        )
    for function in (stack.ingest.function, stack.decide.function):
        _acknowledge(function, arming(stack.decide.schedule_group.schedule_group_name))


def _acknowledge(scope: cdk.Resource, reasons: dict[str, str]) -> None:
    for rule, reason in reasons.items():
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))
