"""Least privilege, read from the synthesized template (by default and with every optional feature on): each
function holds the actions its code calls on the resources it touches."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

STEPS = ["ingest", "decide", "deliver", "feedback", "unsubscribe", "tally"]
TABLE = "<ProfileStoreTable72BB0C89.Arn>"
TABLE_ACTIONS = {
    # What each step's code calls in nextbest.aws.store (a transaction's items are authorised as PutItem and
    # UpdateItem), and the indexes it queries. Never Scan, stream reads or DescribeTable.
    "unsubscribe": ({"Query", "BatchGetItem", "PutItem"}, set()),
    "ingest": (
        {"BatchGetItem", "GetItem", "PutItem", "DeleteItem", "BatchWriteItem", "Query"},
        {"by_canonical", "by_customer"},
    ),
    "decide": ({"Query", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"}, {"by_due"}),
    "deliver": ({"Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"}, set()),
    "feedback": ({"Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"}, set()),
    "tally": ({"UpdateItem", "Query", "DeleteItem"}, set()),
}
STREAM_READS = {
    # What the tally's event-source mapping reads the table's stream with (CDK's grantStreamRead), and nobody else
    "<ProfileStoreTable72BB0C89.StreamArn>": {"DescribeStream", "GetRecords", "GetShardIterator"},
    "*": {"ListStreams"},
}


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def text(value: Any) -> str:
    """A policy value as cdk-nag writes it: ``<Logical.Arn>`` for a GetAtt, ``<Logical>`` for a Ref, joined."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(text(p) for p in parts)
    raise ValueError(value)


def function_of(template: dict[str, Any], step: str) -> tuple[str, dict[str, Any]]:
    [(name, function)] = [
        (k, r)
        for k, r in resources(template, "AWS::Lambda::Function").items()
        if r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == step
    ]
    return name, function


def role_statements(template: dict[str, Any], step: str) -> list[dict[str, Any]]:
    """Every statement of the policies attached to the role of ``step``'s function."""
    role = function_of(template, step)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


@pytest.mark.parametrize("step", STEPS)
def test_a_function_holds_only_the_table_actions_its_code_calls_on_the_table_and_the_indexes_it_queries(
    each_template, step
):
    # Given the statements of the step's role
    granted: dict[str, set[str]] = defaultdict(set)
    for statement in role_statements(each_template, step):
        assert statement["Effect"] == "Allow"
        for action in listed(statement["Action"]):
            if action.startswith("dynamodb:"):
                for resource in listed(statement["Resource"]):
                    granted[text(resource)].add(action.removeprefix("dynamodb:"))
    # Then they name exactly what its code calls: on the table, and Query on the indexes it reads, never index/*
    actions, indexes = TABLE_ACTIONS[step]
    expected = {TABLE: actions} | {f"{TABLE}/index/{index}": {"Query"} for index in indexes}
    assert dict(granted) == expected | (STREAM_READS if step == "tally" else {})


def test_the_public_unsubscribe_function_has_a_small_reserved_concurrency_and_no_other_function_reserves_any(
    each_template,
):
    # An anonymous caller can invoke the unsubscribe URL: its reserved concurrency caps what a flood can take from
    # the account's, and the steps behind queues keep the rest
    reserved = {
        step: function_of(each_template, step)[1]["Properties"].get("ReservedConcurrentExecutions") for step in STEPS
    }
    assert reserved == {step: 10 if step == "unsubscribe" else None for step in STEPS}


ANY = "*"
OUR_SCHEDULES = "every schedule of nextbest's schedule group"
OUR_ENDPOINTS = "every endpoint of the configured platform application"
NOT_SNS = "anything but an SNS ARN (NotResource)"
WILDCARD_GRANTS = {
    # (action, the wildcard resource it is granted on): why it cannot be narrowed. Nothing else, on no role.
    ("xray:PutTraceSegments", ANY): "active tracing; X-Ray has no resource-level permissions",
    ("xray:PutTelemetryRecords", ANY): "active tracing; X-Ray has no resource-level permissions",
    ("sns:CheckIfPhoneNumberIsOptedOut", ANY): "deliver reads the account's SMS opt-out list; no resource type",
    ("dynamodb:ListStreams", ANY): "the tally's stream mapping lists the table's streams; no resource type",
    ("sns:Publish", NOT_SNS): "SMS through SNS is published to a phone number, which is not an ARN",
    ("scheduler:CreateSchedule", OUR_SCHEDULES): "one alarm per decision quiet hours defer, named from data",
    ("scheduler:UpdateSchedule", OUR_SCHEDULES): "re-arming an alarm that exists",
    ("sns:GetEndpointAttributes", OUR_ENDPOINTS): "push endpoints are created per device token at send time",
    ("sns:SetEndpointAttributes", OUR_ENDPOINTS): "re-enabling an endpoint for a token seen again",
    ("sns:Publish", OUR_ENDPOINTS): "a push is published to its device's endpoint",
}


def wildcard(resource: str) -> str | None:
    """Which allowed wildcard ``resource`` is, itself if none, or None if it has no wildcard."""
    if "*" not in resource:
        return None
    if resource == "*":
        return ANY
    if re.fullmatch(r"arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/[\w.-]+/\*", resource):
        return OUR_SCHEDULES
    if re.fullmatch(r"arn:aws:sns:[a-z0-9-]+:\d{12}:endpoint/[A-Z_]+/[\w.-]+/\*", resource):
        return OUR_ENDPOINTS
    return resource


def identity_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(policy logical id, statement) of every identity policy: policies, managed policies, roles' inline ones."""
    for name, policy in {
        **resources(template, "AWS::IAM::Policy"),
        **resources(template, "AWS::IAM::ManagedPolicy"),
    }.items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement
    for name, role in resources(template, "AWS::IAM::Role").items():
        for inline in role["Properties"].get("Policies", []):
            for statement in inline["PolicyDocument"]["Statement"]:
                yield name, statement


def wildcard_grants(template: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(policy, action, wildcard) of every action granted on a wildcard resource, or on all but (NotResource)."""
    found = set()
    for name, statement in identity_statements(template):
        assert "NotAction" not in statement, name
        if "NotResource" in statement:
            kinds = {NOT_SNS if text(r) == "arn:<AWS::Partition>:sns:*:*:*" else f"NotResource {text(r)}"
                     for r in listed(statement["NotResource"])}  # fmt: skip
        else:
            kinds = {kind for r in listed(statement["Resource"]) if (kind := wildcard(text(r)))}
        found |= {(name, action, kind) for action in listed(statement["Action"]) for kind in kinds}
    return found


def test_every_action_on_a_wildcard_resource_is_in_the_allow_list(each_template):
    # Given every action any role holds on "*", on a resource pattern with a wildcard, or on all but (NotResource)
    granted = {(action, kind) for _, action, kind in wildcard_grants(each_template)}
    # Then each is one of the few that cannot be narrowed, on the resource it is allowed on: a new grant on "*"
    # (secretsmanager:GetSecretValue, dynamodb:Scan…) fails here even though cdk-nag's Resource::* is acknowledged
    assert granted - WILDCARD_GRANTS.keys() == set()
    assert {"xray:PutTraceSegments", "sns:CheckIfPhoneNumberIsOptedOut"} <= {action for action, _ in granted}


ACTION = re.compile(r"\b[a-z0-9-]+:[A-Z][A-Za-z]+\*?")


def test_each_acknowledged_wildcard_grant_names_exactly_the_actions_it_excuses(synthesized, each_template):
    # Given cdk-nag's acknowledged wildcard findings, by policy and evidence (Resource::…), with their reasons
    tree = json.loads((synthesized / "tree.json").read_text())
    logical_ids = dict(_logical_ids(tree["tree"]))
    report = json.loads((synthesized / "validation-report.json").read_text())
    reasons = {
        (logical_ids[construct["constructPath"]], match[1]): violation["reason"]
        for plugin in report["pluginReports"]
        for violation in plugin["suppressedViolations"]
        if (match := re.fullmatch(r"AwsSolutions-IAM5\[Resource::(.+)\]", violation["ruleName"]))
        for construct in violation["violatingConstructs"]
    }
    # and the actions each policy holds on each wildcard resource
    held: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, statement in identity_statements(each_template):
        for resource in listed(statement.get("Resource", [])):
            if "*" in text(resource):
                held[name, text(resource)] |= set(listed(statement["Action"]))
    # Then each grant is acknowledged where it is, every acknowledgement excuses one, and its reason names
    # exactly the actions held there
    assert reasons.keys() == held.keys()
    assert {key: set(ACTION.findall(reason)) for key, reason in reasons.items()} == held


def _logical_ids(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(construct path, logical id) of every CloudFormation resource in the construct tree."""
    if logical_id := node.get("attributes", {}).get("aws:cdk:cloudformation:logicalId"):
        yield node["path"], logical_id
    for child in node.get("children", {}).values():
        yield from _logical_ids(child)


UNBOUND_SERVICES = {
    # (resource type, service principal): why neither aws:SourceAccount nor aws:SourceArn binds it
    ("AWS::IAM::Role", "lambda.amazonaws.com"): (
        "a function's execution role: Lambda assumes it only for a function it was passed to, and passing it "
        "needs iam:PassRole in this account; Lambda documents neither key for assuming an execution role"
    ),
}


def service_statements(template: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(logical id, type, service, statement) of every resource policy, key policy and trust policy statement
    that allows an AWS service principal, and of every Lambda permission for one (its source as conditions)."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Permission" and str(props["Principal"]).endswith(".amazonaws.com"):
            source = {f"aws:{key}": props[key] for key in ("SourceAccount", "SourceArn") if key in props}
            yield name, resource["Type"], props["Principal"], {"Condition": {"StringEquals": source}}
        for document in (props.get("PolicyDocument"), props.get("KeyPolicy"), props.get("AssumeRolePolicyDocument")):
            for statement in document["Statement"] if document else []:
                principal = statement.get("Principal")
                if statement["Effect"] == "Allow" and isinstance(principal, dict) and "Service" in principal:
                    for service in listed(principal["Service"]):
                        yield name, resource["Type"], service, statement


def binds_to_this_account(statement: dict[str, Any]) -> bool:
    """aws:SourceAccount is this account, or aws:SourceArn a resource of this stack or an ARN in this account."""
    conditions = {key.lower(): value for test in statement.get("Condition", {}).values() for key, value in test.items()}
    account = conditions.get("aws:sourceaccount")
    arn = conditions.get("aws:sourcearn")
    own_resource = isinstance(arn, dict) and {"Ref", "Fn::GetAtt"} & arn.keys()
    return account == {"Ref": "AWS::AccountId"} or bool(own_resource) or ":<AWS::AccountId>:" in text(arn or "")


def test_every_statement_granting_an_aws_service_binds_it_to_this_account(each_template):
    # Given every statement (topic, queue, key, trust policy…) that lets an AWS service principal in
    unbound, excused = [], set()
    for name, kind, service, statement in service_statements(each_template):
        if (kind, service) in UNBOUND_SERVICES:
            excused.add((kind, service))
        elif not binds_to_this_account(statement):
            unbound.append((name, service))
    # Then each binds the service to this account (aws:SourceAccount) or to one of its resources (aws:SourceArn):
    # another account's number, configuration set or application cannot forge a STOP or a delivery failure
    assert unbound == []
    assert excused == UNBOUND_SERVICES.keys()  # the allow-list holds nothing stale
