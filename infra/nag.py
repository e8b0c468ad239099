"""cdk-nag findings we accept: each named by its exact evidence, scoped to where it occurs, with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk

if TYPE_CHECKING:
    from infra.stack import NextbestStack

BASIC_EXECUTION = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def acknowledge(stack: NextbestStack) -> None:
    table = stack.resolve(stack.store.table.table_arn)["Fn::GetAtt"][0]
    reasons = {
        f"AwsSolutions-IAM4[{BASIC_EXECUTION}]": "AWSLambdaBasicExecutionRole is AWS's minimal policy for a function writing its own logs.",
        "AwsSolutions-IAM5[Resource::*]": "X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions.",
        f"AwsSolutions-IAM5[Resource::<{table}.Arn>/index/*]": "The grant covers the indexes of our own table (the sweep queries the 'due' index).",
    }
    for function in stack.functions:
        for rule, reason in reasons.items():
            cdk.Validations.of(function).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))
