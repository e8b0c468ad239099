"""Alarms, the ops topic and the dashboard in the synthesized template: each test fails if an alarm goes."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def resources(template, kind):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def alarms(template):
    return {
        r["Properties"]["AlarmName"]: r["Properties"] for r in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def metric_stats(alarm):
    """Every metric an alarm reads, simple or inside metric math, as CloudWatch's Metric dict plus Stat/Period."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": alarm["Namespace"],
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm.get("Dimensions", []),
                "Stat": alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
                "Period": alarm["Period"],
            }
        ]
    return [
        {
            "Dimensions": [],
            **m["MetricStat"]["Metric"],
            "Stat": m["MetricStat"]["Stat"],
            "Period": m["MetricStat"]["Period"],
        }
        for m in alarm["Metrics"]
        if "MetricStat" in m
    ]


def dimension(metric, name):
    return next((d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == name), None)


@pytest.fixture(scope="module")
def ops_topic(template):
    return template["Outputs"]["OpsTopic"]["Value"]["Ref"]


def dead_letter_queues(template):
    """Every queue some other queue redrives to, and every on-failure destination of a stream mapping."""
    redriven = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in resources(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }
    on_failure = {
        m["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "DestinationConfig" in m["Properties"]
    }
    return redriven | on_failure


def test_every_dead_letter_queue_alarms_on_its_first_message(template, ops_topic):
    # Given every queue some other queue redrives to, When one message is visible in it, Then ops hear of it.
    dlqs = dead_letter_queues(template)
    assert dlqs
    watched = {}
    for alarm in alarms(template).values():
        for metric in metric_stats(alarm):
            if metric["Namespace"] == "AWS/SQS" and metric["MetricName"] == "ApproximateNumberOfMessagesVisible":
                watched[dimension(metric, "QueueName")["Fn::GetAtt"][0]] = (alarm, metric)
    assert set(watched) == dlqs
    for alarm, metric in watched.values():
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["EvaluationPeriods"] == 1 and metric["Stat"] == "Maximum"
        assert alarm["TreatMissingData"] == "notBreaching"  # SQS stops reporting an idle queue
        assert alarm["AlarmActions"] == [{"Ref": ops_topic}]


def test_every_work_queue_alarms_when_its_oldest_message_is_older_than_retries_explain(template):
    queues = resources(template, "AWS::SQS::Queue")
    work = {k: q["Properties"] for k, q in queues.items() if "RedrivePolicy" in q["Properties"]}
    ages = {}
    for alarm in alarms(template).values():
        for metric in metric_stats(alarm):
            if metric["MetricName"] == "ApproximateAgeOfOldestMessage":
                ages[dimension(metric, "QueueName")["Fn::GetAtt"][0]] = alarm
    assert set(ages) == set(work)
    for name, props in work.items():
        retries = props["VisibilityTimeout"] * props["RedrivePolicy"]["maxReceiveCount"]
        assert retries < ages[name]["Threshold"] <= retries + 900, name  # + the longest SQS delay, no more
        assert ages[name]["EvaluationPeriods"] >= 2, name  # a backlog, not one slow poll


def test_every_function_has_an_error_rate_alarm_from_errors_over_invocations(template, ops_topic):
    functions = set(resources(template, "AWS::Lambda::Function"))
    rated = {}
    for alarm in alarms(template).values():
        names = {m["MetricName"]: m for m in metric_stats(alarm) if m["Namespace"] == "AWS/Lambda"}
        if {"Errors", "Invocations"} <= set(names):
            [expression] = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
            ids = {m["MetricStat"]["Metric"]["MetricName"]: m["Id"] for m in alarm["Metrics"] if "MetricStat" in m}
            assert re.fullmatch(rf"100 \* FILL\({ids['Errors']}, 0\) / {ids['Invocations']}", expression)
            function = dimension(names["Errors"], "FunctionName")["Ref"]
            assert dimension(names["Invocations"], "FunctionName")["Ref"] == function
            rated[function] = alarm
    assert set(rated) == functions  # a new function needs its alarm too
    for alarm in rated.values():
        assert 0 < alarm["Threshold"] <= 10 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["AlarmActions"] == [{"Ref": ops_topic}]


def test_ses_reputation_alarms_warn_before_the_review_levels_and_hold_their_state_without_data(template):
    # SES reviews an account at a 5% bounce rate and a 0.1% complaint rate (SES Developer Guide).
    review = {"Reputation.BounceRate": 0.05, "Reputation.ComplaintRate": 0.001}
    thresholds: dict[str, list[float]] = {name: [] for name in review}
    for alarm in alarms(template).values():
        for metric in metric_stats(alarm):
            if metric["Namespace"] == "AWS/SES":
                assert metric["Dimensions"] == []  # account-level: what SES itself reviews
                assert alarm["TreatMissingData"] == "ignore"
                assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
                thresholds[metric["MetricName"]].append(alarm["Threshold"])
    for name, level in review.items():
        assert sorted(thresholds[name]) == [level / 2, level], name


def test_send_volume_has_an_anomaly_detector_and_a_band_alarm_on_the_same_metric(template, ops_topic):
    [detector] = resources(template, "AWS::CloudWatch::AnomalyDetector").values()
    model = detector["Properties"]["SingleMetricAnomalyDetector"]
    assert (model["Namespace"], model["MetricName"], model["Stat"]) == ("nextbest", "Delivery_sent", "Sum")
    assert model["Dimensions"] == [{"Name": "service", "Value": "deliver"}]
    [alarm] = [a for a in alarms(template).values() if "ThresholdMetricId" in a]
    band = next(m for m in alarm["Metrics"] if m["Id"] == alarm["ThresholdMetricId"])
    assert band["Expression"].startswith("ANOMALY_DETECTION_BAND(")
    [sent] = metric_stats(alarm)
    assert sent["MetricName"] == model["MetricName"] and sent["Stat"] == model["Stat"]
    assert sent["Dimensions"] == model["Dimensions"]
    assert alarm["ComparisonOperator"] == "LessThanLowerOrGreaterThanUpperThreshold"
    assert alarm["AlarmActions"] == [{"Ref": ops_topic}]


def test_an_alarm_fires_when_decisions_to_send_flow_but_nothing_is_sent(template):
    [alarm] = [
        a
        for a in alarms(template).values()
        if {m["MetricName"] for m in metric_stats(a)} == {"DecisionsToSend", "Delivery_sent"}
    ]
    [expression] = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    assert "== 0" in expression and ">=" in expression
    assert alarm["TreatMissingData"] == "notBreaching"


def test_every_alarm_notifies_the_encrypted_tls_only_ops_topic_on_alarm_and_ok(template, ops_topic):
    everything = alarms(template)
    assert len(everything) >= 5 + 5 + 5 + 4 + 2
    for name, alarm in everything.items():
        assert alarm["AlarmActions"] == [{"Ref": ops_topic}], name
        assert alarm["OKActions"] == [{"Ref": ops_topic}], name
        assert len(alarm["AlarmDescription"]) > 40, name  # says what to do
    topic = template["Resources"][ops_topic]["Properties"]
    key = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert template["Resources"][key]["Properties"]["EnableKeyRotation"] is True
    key_policy = template["Resources"][key]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in key_policy)
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(template, "AWS::SNS::TopicPolicy").values()
        if p["Properties"]["Topics"] == [{"Ref": ops_topic}]
    ]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    [publish] = [s for s in policy if s["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and "aws:SourceAccount" in str(publish)


def test_no_ops_email_is_subscribed_unless_context_names_one(template, ops_topic):
    assert not [
        s
        for s in resources(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": ops_topic}
    ]


def dashboard_text(template):
    [dashboard] = resources(template, "AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


def test_the_dashboard_shows_every_dead_letter_queue_every_function_and_the_ses_threshold_lines(template):
    body = dashboard_text(template)
    for dlq in dead_letter_queues(template):
        assert f'"Fn::GetAtt": ["{dlq}", "QueueName"]' in body, dlq
    for function in resources(template, "AWS::Lambda::Function"):
        assert f'{{"Ref": "{function}"}}' in body, function
    lines = {(float(v), label) for v, label in re.findall(r'"value":([\d.]+),"color":"[^"]+","label":"([^"]+)"', body)}
    assert {(2.5, "warning"), (5, "SES review"), (0.05, "warning"), (0.1, "SES review")} <= lines  # percent
    for title in ("Dead-letter queue depth", "Decisions vs sends by channel", "Duration p99", "Lambda error rate"):
        assert title in body, title


def emitted_metric_patterns():
    """``add_metric(name=…)`` in each function's handler (and the shared batch code every SQS step uses), as
    regular expressions: an f-string's ``{…}`` stands for any suffix."""
    patterns: dict[str, list[str]] = {}
    batch = (ROOT / "shared/nextbest/aws/batch.py").read_text()
    for handler in (ROOT / "functions").glob("*/handler.py"):
        source = handler.read_text() + ("" if handler.parent.name == "unsubscribe" else batch)
        names = re.findall(r'add_metric\(\s*name=f?"([^"]+)"', source)
        patterns[handler.parent.name] = [re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(n)) for n in names]
    return patterns


def test_the_metrics_alarms_and_dashboard_read_are_metrics_the_functions_emit(template):
    emitted = emitted_metric_patterns()
    for name, function in resources(template, "AWS::Lambda::Function").items():
        assert function["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "nextbest", name
    read = {
        (m["MetricName"], dimension(m, "service"))
        for alarm in alarms(template).values()
        for m in metric_stats(alarm)
        if m["Namespace"] == "nextbest"
    }
    read |= set(re.findall(r'\["nextbest","([^"]+)","service","([^"]+)"', dashboard_text(template)))
    assert {("Delivery_sent", "deliver"), ("Sent_email", "deliver"), ("Rejected", "ingest")} <= read
    for metric, step in read:
        assert any(re.fullmatch(p, metric) for p in emitted[step]), (metric, step)


def test_an_ops_email_in_context_subscribes_to_the_ops_topic():
    # Given a small stack with the queues and functions Observability reads, and -c opsEmail=…
    import aws_cdk as cdk
    from aws_cdk import assertions
    from aws_cdk import aws_lambda as lambda_

    from infra.constructs import work_queue
    from infra.observability import Observability

    app = cdk.App(context={"opsEmail": "oncall@example.com"})
    stack = cdk.Stack(app, "ops")

    def step(name, *queues):
        function = lambda_.Function(
            stack,
            name,
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context): pass"),
        )
        pairs = [work_queue(stack, f"{name}{q}", cdk.Duration.seconds(30)) for q in queues]
        return function, pairs

    ingest, [(events, events_dlq), (consent, consent_dlq)] = step("Ingest", "Events", "Consent")
    decide, [(due, due_dlq)] = step("Decide", "Due")
    deliver, requests = step("Deliver", "EmailRequests", "SmsRequests", "PushRequests")
    feedback, [(notes, notes_dlq)] = step("Feedback", "Notes")
    unsubscribe, _ = step("Unsubscribe")
    tally, [(_, failed_batches)] = step("Tally", "Stream")
    # When the construct is built
    Observability(
        stack,
        "Observability",
        ingest=SimpleNamespace(
            function=ingest,
            queue=events,
            dead_letters=events_dlq,
            consent_queue=consent,
            consent_dead_letters=consent_dlq,
        ),
        decide=SimpleNamespace(function=decide, queue=due, dead_letters=due_dlq),
        deliver=SimpleNamespace(
            function=deliver,
            queues={c: queue for c, (queue, _) in zip(("email", "sms", "push"), requests, strict=True)},
            dead_letters={c: dlq for c, (_, dlq) in zip(("email", "sms", "push"), requests, strict=True)},
        ),
        unsubscribe=SimpleNamespace(function=unsubscribe),
        feedback=SimpleNamespace(function=feedback, queue=notes, dead_letters=notes_dlq),
        tally=SimpleNamespace(function=tally, dead_letters=failed_batches),
    )
    # Then the address is subscribed by e-mail (SNS mails it a confirmation link)
    template = assertions.Template.from_stack(stack)
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"})
    # a DLQ and an age alarm per queue; the tally's failed batches and iterator age; an error rate per function...;
    # the empty coupon pool
    template.resource_count_is("AWS::CloudWatch::Alarm", 7 + 7 + 2 + 6 + 4 + 3 + 1)
