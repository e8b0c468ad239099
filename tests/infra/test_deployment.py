"""Deploying: the context a real stack must be given, environments sharing an account, the outputs an operator
needs and the README's teardown of what the stack retains."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.app import ContextError, build
from infra.local import synthesize

ROOT = Path(__file__).resolve().parents[2]
NOT_GLOBAL = {"PolicyName", "DisplayName", "IndexName", "MetricName", "AttributeName"}
"""``…Name`` properties that name nothing account-wide (an inline policy, a table's index, a metric)."""


def fixed_names(template):
    """Every literal name the template gives a resource: what two stacks in one account must not share."""
    return {
        value
        for resource in template["Resources"].values()
        for key, value in resource.get("Properties", {}).items()
        if key.endswith("Name") and key not in NOT_GLOBAL and isinstance(value, str)
    }


@pytest.mark.parametrize(
    ("context", "refused"),
    [
        ({}, ["sender", "siteUrl"]),
        ({"sender": "news@shop.test"}, ["siteUrl"]),
        ({"siteUrl": "https://shop.test"}, ["sender"]),
        ({"sender": "news", "siteUrl": "https://shop.test"}, ["sender='news' is not an e-mail address"]),
        ({"sender": "news@shop.test", "siteUrl": "shop.test"}, ["siteUrl='shop.test' is not an http(s) URL"]),
        ({"sender": "news@shop.test", "siteUrl": "https://shop.test", "env": "Prod!"}, ["env='Prod!'"]),
        ({"sender": "news@shop.test", "siteUrl": "https://shop.test", "cartUrl": "/basket"}, ["cartUrl='/basket'"]),
    ],
)
def test_synth_refuses_a_stack_without_its_sender_and_site_naming_what_is_missing(context, refused):
    # Given context without a sender or a site (or a malformed one), when the app is built, then it refuses
    with pytest.raises(ContextError) as refusal:
        build(context=context)
    for part in refused:
        assert part in str(refusal.value)


def test_cdk_synth_without_context_exits_with_one_line_and_no_default_sender():
    # Given the context the CDK CLI would pass from cdk.json alone (no -c), when the app runs as `cdk synth` runs it
    context = json.loads((ROOT / "cdk.json").read_text()).get("context", {})
    result = subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it exits 2 with one line saying what is missing and how to give it, and nothing is synthesized
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("nextbest:")]
    assert "sender" in line and "siteUrl" in line and "-c sender=" in line
    assert "Traceback" not in result.stderr
    assert "example.com" not in (ROOT / "cdk.json").read_text()


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    outdir = synthesize(tmp_path_factory.mktemp("cdk.out.prod"), {"env": "prod", "holdoutFloorPercent": "50"})
    return json.loads((outdir / "nextbest-prod.template.json").read_text())


def test_two_environments_share_no_fixed_name_so_they_can_share_an_account(template, prod):
    # Given the default stack and the one deployed with -c env=prod
    default, production = fixed_names(template), fixed_names(prod)
    # Then both name their alarms, dashboard, bus and schedule group, no name is in both, and each says which
    assert len(production) == len(default) > 20
    assert default.isdisjoint(production)
    assert all(name.startswith(("nextbest-prod-", "nextbestprod-")) for name in production - {"nextbest-prod"})


def test_the_outputs_name_every_dead_letter_queue_the_table_the_bus_and_the_dashboard(template):
    outputs = template["Outputs"]
    queues = template["Resources"]
    dead_letter_targets = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if q["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in q.get("Properties", {})
    }
    dead_letter_outputs = {o["Value"]["Ref"] for name, o in outputs.items() if name.startswith("DeadLetters")}
    # Every dead-letter queue of the stack is an output (its URL: what `nextbest replay` takes), and only those
    assert dead_letter_outputs == dead_letter_targets and len(dead_letter_targets) >= 5
    assert outputs["TableName"]["Value"] == {"Ref": _only(template, "AWS::DynamoDB::Table")}
    assert outputs["BusName"]["Value"] == {"Ref": _only(template, "AWS::Events::EventBus")}
    assert {"Ref": _only(template, "AWS::CloudWatch::Dashboard")} in outputs["Dashboard"]["Value"]["Fn::Join"][1]
    group = template["Resources"][_only(template, "AWS::Scheduler::ScheduleGroup")]
    assert outputs["ScheduleGroup"]["Value"] == group["Properties"]["Name"]


def _only(template, kind):
    [logical_id] = [k for k, r in template["Resources"].items() if r["Type"] == kind]
    return logical_id


REMOVAL = {
    "AWS::DynamoDB::Table": "aws dynamodb delete-table",
    "AWS::KMS::Key": "aws kms schedule-key-deletion",
    "AWS::Scheduler::ScheduleGroup": "aws scheduler delete-schedule-group",
    "AWS::SecretsManager::Secret": "aws secretsmanager delete-secret",
}


def test_the_readme_tears_down_every_kind_of_resource_the_stack_retains(synthesized, each_template):
    # Given what survives `cdk destroy` (by default and with every optional feature on)
    retained = {r["Type"] for r in each_template["Resources"].values() if r.get("DeletionPolicy") == "Retain"}
    readme = (ROOT / "README.md").read_text()
    teardown = readme[readme.index("### Tearing it down") :]
    teardown = teardown[: teardown.index("\n## ")]
    # Then the README's teardown removes each kind, with the command that does
    assert retained <= set(REMOVAL), retained - set(REMOVAL)
    for kind in retained:
        assert REMOVAL[kind] in teardown, kind
    assert re.search(r"cdk destroy", teardown)


def _decide_environment(template):
    [decide] = [
        r["Properties"]["Environment"]["Variables"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME") == "decide"
    ]
    return decide


def test_a_holdout_floor_given_as_context_reaches_decide_and_a_bad_number_is_refused_naming_its_key(template, prod):
    assert float(_decide_environment(prod)["HOLDOUT_FLOOR_PERCENT"]) == 50
    assert float(_decide_environment(template).get("HOLDOUT_FLOOR_PERCENT", 0)) == 0
    for key, bad in (("holdoutFloorPercent", "70"), ("holdoutFloorPercent", "half"), ("sesMaxSendRate", "fast")):
        # refused as the missing sender is: `cdk synth` prints one line naming the key, no traceback (infra.app)
        with pytest.raises(ContextError, match=key):
            build(context={"sender": "news@shop.test", "siteUrl": "https://shop.test", key: bad})


def test_the_readme_s_standing_cost_is_what_the_synthesized_stack_holds(template):
    from nextbest_lab.cost import Prices, standing

    # Given the default stack's template, priced as the bench prices it
    expected = standing(template, Prices.load())
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### What it costs") :]
    section = section[: section.index("\n### ")]
    rows = [[cell.strip(" *") for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| what")]  # fmt: skip
    # Then the README's table shows each count and its dollars, and their total
    assert [(int(count.replace(",", "")), float(usd)) for _, count, usd in rows[:-1]] == [
        (item.count, round(item.usd, 2)) for item in expected
    ]
    assert float(rows[-1][2]) == round(sum(item.usd for item in expected), 2)
    kinds = [r["Type"] for r in template["Resources"].values()]
    assert f"{kinds.count('AWS::CloudWatch::Alarm')} alarms" in section
    assert f"{kinds.count('AWS::Scheduler::Schedule')} schedules a minute" in section
