"""Least privilege, read from the synthesized template (by default and with every optional feature on): each
function holds the actions its code calls on the resources it touches."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

STEPS = ["ingest", "decide", "deliver", "feedback", "unsubscribe"]
TABLE = "<ProfileStoreTable72BB0C89.Arn>"
TABLE_ACTIONS = {
    # What each step's code calls in nextbest.aws.store (a transaction's items are authorised as PutItem and
    # UpdateItem), and the indexes it queries. Never Scan, stream reads or DescribeTable.
    "unsubscribe": ({"GetItem", "BatchGetItem", "PutItem"}, set()),
    "ingest": (
        {"BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"},
        {"by_canonical", "by_customer"},
    ),
    "decide": ({"GetItem", "BatchGetItem", "PutItem", "UpdateItem"}, {"by_sweep"}),
    "deliver": ({"GetItem", "BatchGetItem", "PutItem", "UpdateItem"}, set()),
    "feedback": ({"GetItem", "BatchGetItem", "PutItem", "UpdateItem"}, set()),
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
    assert dict(granted) == {TABLE: actions} | {f"{TABLE}/index/{index}": {"Query"} for index in indexes}


def test_the_public_unsubscribe_function_has_a_small_reserved_concurrency_and_no_other_function_reserves_any(
    each_template,
):
    # An anonymous caller can invoke the unsubscribe URL: its reserved concurrency caps what a flood can take from
    # the account's, and the steps behind queues keep the rest
    reserved = {
        step: function_of(each_template, step)[1]["Properties"].get("ReservedConcurrentExecutions") for step in STEPS
    }
    assert reserved == {step: 10 if step == "unsubscribe" else None for step in STEPS}
