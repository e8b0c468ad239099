"""The synthesized template: the properties that matter, cdk-nag clean, cfn-lint clean, CLI-readable."""

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from infra.assets import LAMBDA_UNZIPPED_LIMIT, unzipped_size

ROOT = Path(__file__).resolve().parents[2]


def resources(template, kind):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_cdk_nag_reports_no_unacknowledged_finding_and_every_acknowledgement_has_a_reason(synthesized):
    report = json.loads((synthesized / "validation-report.json").read_text())  # by default and with every option
    assert [v for p in report["pluginReports"] for v in p["violations"]] == []
    from infra.nag import reasons

    for rule, reason in reasons("group").items():
        assert rule.startswith("AwsSolutions-") and len(reason) > 40, rule


def test_cfn_lint_finds_no_error(synthesized):
    result = subprocess.run(
        [
            str(Path(__import__("sys").executable).with_name("cfn-lint")),
            "--format",
            "parseable",
            str(synthesized / "nextbest.template.json"),
        ],
        capture_output=True,
        text=True,
    )
    errors = [line for line in result.stdout.splitlines() if ":E" in line]
    assert result.returncode in (0, 4, 8) and errors == [], result.stdout  # 4/8: warnings/informational only


def test_every_work_queue_redrives_to_a_dead_letter_queue_and_outlives_its_consumer(template):
    queues = resources(template, "AWS::SQS::Queue")
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    functions = resources(template, "AWS::Lambda::Function")
    dead_letter_targets = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    } | {  # a stream mapping's on-failure destination: where Lambda describes a batch it gave up
        m["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for m in mappings.values()
        if "DestinationConfig" in m["Properties"]
    }
    consumed = {m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m for m in mappings.values()}
    for name, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), name
        if name in dead_letter_targets:
            continue
        assert props["RedrivePolicy"]["maxReceiveCount"] >= 3, name
        mapping = consumed[name]
        function = functions[mapping["Properties"]["FunctionName"]["Ref"]]
        assert props["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"], name
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name


def _environment_json(value):
    """A JSON environment value CDK joined from tokens, with each token as its logical id (``Ref``/``GetAtt``)."""
    if isinstance(value, str):
        return json.loads(value)
    parts = value["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else (p.get("Ref") or p["Fn::GetAtt"][0]) for p in parts))


def test_each_channel_has_its_own_delivery_queue_and_dlq_consumed_at_a_concurrency_from_its_provider_rate(
    each_template, synthesized
):
    from nextbest.core.events import CHANNELS

    from infra.constructs.deliver import PROVIDER_RATES, maximum_concurrency
    from tests.infra.conftest import OPTIONAL_FEATURES

    functions = resources(each_template, "AWS::Lambda::Function")
    queues = resources(each_template, "AWS::SQS::Queue")
    [deliver] = [k for k, f in functions.items() if f["Properties"]["Description"] == "nextbest deliver"]
    [decide] = [k for k, f in functions.items() if f["Properties"]["Description"] == "nextbest decide"]
    # Given decide's queue for each channel
    by_channel = _environment_json(functions[decide]["Properties"]["Environment"]["Variables"]["DELIVER_QUEUE_URLS"])
    assert set(by_channel) == set(CHANNELS) and len(set(by_channel.values())) == len(CHANNELS)
    mappings = {
        m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
        for m in resources(each_template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"]["Ref"] == deliver
    }
    assert set(mappings) == set(by_channel.values())  # deliver consumes exactly those queues
    options = synthesized.name.startswith("cdk.out.options")
    dead_letters = _environment_json(
        functions[deliver]["Properties"]["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URLS"]
    )
    for channel, queue in by_channel.items():
        # Then each has its own DLQ, where deliver's rejections of its records go too
        dlq = queues[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert dead_letters[queue] == dlq
        # And its mapping runs at most as many invocations as the provider's rate (context, else default) allows
        key, default = PROVIDER_RATES[channel]
        rate = float(OPTIONAL_FEATURES[key]) if options and key in OPTIONAL_FEATURES else default
        assert mappings[queue]["ScalingConfig"]["MaximumConcurrency"] == maximum_concurrency(rate)
        assert mappings[queue]["BatchSize"] == 10
    assert len({m["ScalingConfig"]["MaximumConcurrency"] for m in mappings.values()}) > 1
    assert len(set(dead_letters.values())) == len(CHANNELS)


def test_maximum_concurrency_follows_the_rate_within_what_lambda_allows():
    from infra.constructs.deliver import maximum_concurrency

    assert maximum_concurrency(1) == 2  # Lambda's minimum, even for the SES sandbox's 1 e-mail a second
    assert maximum_concurrency(14) == 2 and maximum_concurrency(100) == 10 and maximum_concurrency(1000) == 100
    assert maximum_concurrency(50_000) == 1000  # and its maximum
    assert maximum_concurrency(100, seconds_per_send=0.5) == 50  # slower sends: more of them at once


def test_functions_are_arm64_on_the_newest_python_with_tracing_json_logs_and_the_layers(template):
    for name, function in resources(template, "AWS::Lambda::Function").items():
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"], name
        assert props["Runtime"] == "python3.14", name
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["LoggingConfig"]["LogFormat"] == "JSON", name
        assert len(props["Layers"]) == (2 if name.startswith("Decide") else 1), name


def _layer_assets(cdk_out, template):
    return {
        k: cdk_out / r["Metadata"]["aws:asset:path"]
        for k, r in resources(template, "AWS::Lambda::LayerVersion").items()
    }


def test_only_decide_gets_the_ml_layer_and_it_holds_arm64_wheels_and_the_verified_models(cdk_out, template):
    layers = _layer_assets(cdk_out, template)
    ml = {k for k, path in layers.items() if (path / "python" / "numpy").is_dir()}
    assert len(ml) == 1
    [ml_layer] = ml
    holders = {
        r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for r in resources(template, "AWS::Lambda::Function").values()
        if {"Ref": ml_layer} in r["Properties"]["Layers"]
    }
    assert holders == {"decide"}
    [decide] = [
        r
        for r in resources(template, "AWS::Lambda::Function").values()
        if r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "decide"
    ]
    assert decide["Properties"]["Environment"]["Variables"]["MODELS_DIR"] == "/opt/models"
    site = layers[ml_layer] / "python"
    assert list(site.glob("numpy/_core/_multiarray_umath.cpython-314-aarch64-linux-gnu.so"))
    assert not list(site.rglob("tests")) and not list(site.rglob("*.pyx"))
    assert {p.name for p in site.iterdir() if p.is_dir() and ".dist-info" not in p.name} == {"numpy", "numpy.libs"}
    from nextbest.decide.scoring import verify

    manifest = verify(layers[ml_layer] / "models")  # the shipped files match their manifest and these pins
    assert set(manifest["models"]) == {"lapse", "propensity", "recommendations"}
    # no policy in the repository: none ships and decide ranks by expected value
    # (tests/e2e/test_live_policy_end_to_end.py deploys one)
    assert decide["Properties"]["Environment"]["Variables"]["POLICY_DIR"] == ""
    assert not (layers[ml_layer] / "policy").exists()


def test_the_table_is_on_demand_with_point_in_time_recovery_and_encryption(template):
    [(logical_id, table)] = resources(template, "AWS::DynamoDB::Table").items()
    assert logical_id == "ProfileStoreTable72BB0C89"  # a new logical id would deploy a second, empty table
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_what_should_not_live_forever_expires_and_dead_letters_outlive_no_erasure_deadline(template):
    """Decisions, markers and unidentified cookies carry ``expires_at`` (DynamoDB TTL); a dead-lettered event (its
    body is what a replay needs) is gone 14 days after it failed, well inside the month GDPR gives to erase."""
    [table] = resources(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for name, queue in resources(template, "AWS::SQS::Queue").items():
        assert queue["Properties"]["MessageRetentionPeriod"] <= 14 * 86400, name


def test_the_erasure_key_is_retained_and_only_ingest_reads_it(template):
    [(logical_id, secret)] = [
        (k, r)
        for k, r in resources(template, "AWS::SecretsManager::Secret").items()
        if k.startswith("IngestErasureKey")
    ]
    assert secret["DeletionPolicy"] == "Retain"  # the tombstones it names outlive the stack with the table
    readers = [
        policy["Properties"]["Roles"]
        for policy in resources(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Resource") == {"Ref": logical_id}
    ]
    assert len(readers) == 1 and readers[0][0]["Ref"].startswith("IngestFunctionServiceRole")


def test_the_coupon_key_is_retained_and_only_decide_reads_it(template):
    [(logical_id, secret)] = [
        (k, r) for k, r in resources(template, "AWS::SecretsManager::Secret").items() if k.startswith("DecideCouponKey")
    ]
    assert secret["DeletionPolicy"] == "Retain"  # codes already in inboxes stay verifiable
    readers = [
        policy["Properties"]["Roles"]
        for policy in resources(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Resource") == {"Ref": logical_id}
    ]
    assert len(readers) == 1 and readers[0][0]["Ref"].startswith("DecideFunctionServiceRole")
    assert template["Outputs"]["CouponKey"]["Value"] == {"Ref": logical_id}


def test_ses_events_reach_the_feedback_function(template):
    [destination] = resources(template, "AWS::SES::ConfigurationSetEventDestination").values()
    sns = destination["Properties"]["EventDestination"]["SnsDestination"]["TopicARN"]["Ref"]
    assert {"bounce", "complaint", "delivery"} <= set(
        destination["Properties"]["EventDestination"]["MatchingEventTypes"]
    )
    # SES tracks the clicks (and opens) of e-mails sent through a configuration set with a destination for them: it
    # wraps each link in a redirect that keeps the shop's URL, attribution parameters included (nextbest.core.links)
    assert {"click", "open"} <= set(destination["Properties"]["EventDestination"]["MatchingEventTypes"])
    assert destination["Properties"]["EventDestination"]["Enabled"] is True
    subscriptions = {
        r["Properties"]["TopicArn"]["Ref"]: r["Properties"]
        for r in resources(template, "AWS::SNS::Subscription").values()
    }
    subscription = subscriptions[sns]
    assert subscription["RawMessageDelivery"] is True
    queue = subscription["Endpoint"]["Fn::GetAtt"][0]
    feedback = [
        m
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] == queue
    ]
    inbound_sms = template["Outputs"]["InboundSmsTopic"]["Value"]["Ref"]
    assert subscriptions[inbound_sms]["Endpoint"]["Fn::GetAtt"][0] == queue  # STOP replies take the same road
    assert len(feedback) == 1


def test_every_event_type_is_routed_and_unknown_ones_are_not_dropped(template):
    from nextbest.core.events import DETAIL_TYPES

    patterns = [
        r["Properties"]["EventPattern"]["detail-type"] for r in resources(template, "AWS::Events::Rule").values()
    ]
    routed = {t for p in patterns for t in p if isinstance(t, str)}
    assert routed == set(DETAIL_TYPES)
    assert {"anything-but": list(DETAIL_TYPES)} in [t for p in patterns for t in p if isinstance(t, dict)]


STEPS = ["ingest", "decide", "deliver", "feedback", "unsubscribe"]
LAMBDA_RUNTIME_PACKAGES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "certifi"}
"""The AWS SDK and what it imports, which Lambda's Python runtime provides (botocore uses certifi if it is there
and its own CA bundle if not), so no layer ships them."""
LOADED_ON_IMPORT = """
import json, sys
import handler
print(json.dumps({
    "path": sys.path,
    "nextbest": {n: m.__file__ for n, m in sys.modules.items() if n == "nextbest" or n.startswith("nextbest.")},
    "numpy": "numpy" in sys.modules,
    "third_party": sorted({
        n.partition(".")[0] for n, m in list(sys.modules.items())
        if any(str(getattr(m, "__file__", None) or "").startswith(p) for p in sys.path if "-packages" in p)
    }),
}))
"""


def _function(template, step):
    [(name, function)] = [
        (k, r)
        for k, r in resources(template, "AWS::Lambda::Function").items()
        if r["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == step
    ]
    return name, function


def _environment(cdk_out, template, function):
    """The function's environment from the template: a path under /opt is the asset of the layer holding it
    (decide's models), anything CloudFormation resolves at deploy time a placeholder (import needs no AWS)."""
    env = {}
    for key, value in function["Properties"]["Environment"]["Variables"].items():
        if not isinstance(value, str):  # a token; in a JSON value joined from tokens, each token
            parts = value["Fn::Join"][1] if "Fn::Join" in value else [{}]
            value = "".join(p if isinstance(p, str) else f"placeholder-{key.lower()}" for p in parts)
        for ref in function["Properties"]["Layers"] if value.startswith("/opt/") else []:
            candidate = _layer_assets(cdk_out, template)[ref["Ref"]] / value.removeprefix("/opt/")
            value = str(candidate) if candidate.exists() else value
        env[key] = value
    return env


def _shipped_modules(asset):
    names = set()
    for path in (asset / "nextbest").rglob("*.py"):
        parts = path.relative_to(asset).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("step", STEPS)
def test_a_function_ships_exactly_the_nextbest_modules_its_handler_loads(cdk_out, template, step):
    # Given the function's synthesized asset and its environment from the template
    _, function = _function(template, step)
    asset = (cdk_out / function["Metadata"]["aws:asset:path"]).resolve()
    site = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})  # third-party packages only
    env = _environment(cdk_out, template, function) | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(site),
    }
    # When its handler is imported as Lambda would, from the asset, in an interpreter that cannot see shared/
    # (-S: no site hook, so not the editable install of nextbest either)
    result = subprocess.run(
        [sys.executable, "-S", "-c", LOADED_ON_IMPORT], cwd=asset, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr  # a module the asset lacks fails the import
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert not [p for p in loaded["path"] if p.startswith(str(ROOT / "shared"))]
    # Then every nextbest module came from the asset, and the asset holds no module the handler did not load
    assert all(Path(file).resolve().is_relative_to(asset) for file in loaded["nextbest"].values())
    assert _shipped_modules(asset) == set(loaded["nextbest"])
    assert loaded["numpy"] == (step == "decide")  # the others cold-start without numpy
    # and every third-party package it loaded is in one of its layers, or in Lambda's Python runtime
    layers = _layer_assets(cdk_out, template)
    shipped = {
        p.name.removesuffix(".py")
        for ref in function["Properties"]["Layers"]
        for p in (layers[ref["Ref"]] / "python").iterdir()
    }
    assert set(loaded["third_party"]) - shipped <= LAMBDA_RUNTIME_PACKAGES


def test_assets_fit_lambda_limits_and_only_decide_carries_numpy(cdk_out, template):
    layers = _layer_assets(cdk_out, template)
    sizes = {k: unzipped_size(p) for k, p in layers.items()}
    for step in STEPS:
        name, function = _function(template, step)
        asset = cdk_out / function["Metadata"]["aws:asset:path"]
        files = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}
        assert "handler.py" in files, name
        assert not any(f.startswith(("infra/", "tests/", "nextbest_cli/", "nextbest_lab/")) for f in files), name
        attached = sum(sizes[ref["Ref"]] for ref in function["Properties"]["Layers"])
        assert unzipped_size(asset) + attached < LAMBDA_UNZIPPED_LIMIT, name
        if step != "decide":
            shipped = [p.as_posix() for ref in function["Properties"]["Layers"] for p in layers[ref["Ref"]].rglob("*")]
            assert not any("/numpy/" in p or "/sklearn/" in p for p in shipped), name
    everything = [p.as_posix() for layer in layers.values() for p in layer.rglob("*")]
    assert not any("/infra/" in p or "/nextbest/" in p for p in everything)  # the domain ships with each function


def test_the_ml_layer_pins_equal_the_ml_dependency_group():
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["ml"]
    locked = (ROOT / "layers/ml/requirements.txt").read_text()
    pins = {line.split(" ")[0] for line in locked.splitlines() if "==" in line and not line.startswith("#")}
    assert set(group) <= pins
    assert "--hash=sha256:" in locked


def test_the_runtime_layer_pins_equal_the_project_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [
        line.strip()
        for line in (ROOT / "layers/runtime/requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(layer) == sorted(d for d in project if not d.startswith("boto3"))
    locked = (ROOT / "layers/runtime/requirements.txt").read_text()
    assert all(pin in locked for pin in layer)


def test_the_pinned_cdk_cli_reads_the_cloud_assembly(cdk_out):
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    if not cli.exists():
        pytest.fail("the CDK CLI is missing: `make test` installs it (npm ci)")
    result = subprocess.run(
        [str(cli), "ls", "--app", str(cdk_out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "CDK_DISABLE_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "nextbest" in result.stdout


def test_the_unsubscribe_signing_key_keeps_its_logical_id_so_links_already_sent_keep_working(template):
    signing = [k for k in resources(template, "AWS::SecretsManager::Secret") if "Unsubscribe" in k]
    assert signing == ["DeliveryUnsubscribeSigningKeyB276E271"]  # a new logical id would regenerate the key


def test_the_cart_page_given_at_deploy_reaches_decide_and_by_default_decide_links_to_the_site_s_cart(
    template, cdk_out_with_options
):
    from tests.infra.conftest import OPTIONAL_FEATURES

    with_option = json.loads((cdk_out_with_options / "nextbest.template.json").read_text())
    variables = {
        name: _function(t, "decide")[1]["Properties"]["Environment"]["Variables"]
        for name, t in (("default", template), ("option", with_option))
    }
    assert variables["default"].get("CART_URL", "") == ""  # decide then links to <siteUrl>/cart
    assert variables["option"]["CART_URL"] == OPTIONAL_FEATURES["cartUrl"]
