"""What IAM would have to allow for the DynamoDB requests a function makes, checked against the template.

moto does not enforce IAM, so a grant narrowed too far would only fail once deployed. The runtime records, for
every DynamoDB request a function makes, the IAM action and resource AWS authorises it as (a transaction item
as its own ``PutItem``/``UpdateItem``/…, a query of an index on the index's ARN); :func:`ungranted` lists those
that the function's role policies in the template do not allow.
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from infra.local.emulator.account import ACCOUNT, PARTITION, REGION
from infra.local.emulator.provisioning import Deployment

Request = tuple[str, str]
"""(IAM action, resource ARN)"""

TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
"""How DynamoDB authorises each item of a TransactWriteItems (``Get`` of TransactGetItems: GetItem)."""


def table_arn(name: str) -> str:
    return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def dynamodb_requests(operation: str, params: dict[str, Any]) -> set[Request]:
    """The (action, resource) pairs IAM checks for one DynamoDB API call."""
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return {
            ("dynamodb:" + TRANSACTION_ITEMS.get(kind, "GetItem"), table_arn(item["TableName"]))
            for entry in params["TransactItems"]
            for kind, item in entry.items()
        }
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return {(f"dynamodb:{operation}", table_arn(name)) for name in params["RequestItems"]}
    resource = table_arn(params["TableName"])
    if "IndexName" in params:
        resource += f"/index/{params['IndexName']}"
    return {(f"dynamodb:{operation}", resource)}


def ungranted(deployment: Deployment, function: str, requests: set[Request]) -> list[Request]:
    """The requests the role of ``function`` (a logical id) has no Allow statement for."""
    statements = list(_dynamodb_statements(deployment, function))
    return sorted(
        (action, resource)
        for action, resource in requests
        if not any(
            any(fnmatchcase(action.lower(), a.lower()) for a in actions) and any(fnmatchcase(resource, r) for r in arns)
            for actions, arns in statements
        )
    )


def _dynamodb_statements(deployment: Deployment, function: str) -> Iterator[tuple[list[str], list[str]]]:
    """(actions, resource ARNs) of each Allow statement naming a DynamoDB action, from the function role's policies."""
    role = deployment.resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    for _, policy in deployment.of_type("AWS::IAM::Policy"):
        if {"Ref": role} not in policy["Roles"]:
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = _listed(statement["Action"])
            if (
                statement["Effect"] == "Allow"
                and "Resource" in statement
                and any(a.startswith("dynamodb:") for a in actions)
            ):
                yield actions, [str(deployment.resolve(r)) for r in _listed(statement["Resource"])]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
