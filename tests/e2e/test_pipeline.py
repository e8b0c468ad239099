"""The whole pipeline on the local emulation, driven through the bus as a producer would."""

import hashlib
import json
from datetime import datetime, timedelta

from nextbest.aws.store.table import document, profile_of
from nextbest.core.due import DUE_SHARDS

from tests.conftest import EVENTS, T0, sample


def put(emulation, *events):
    result = emulation.client("events").put_events(
        Entries=[
            {
                "EventBusName": emulation.output("BusName"),
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
            }
            for e in events
        ]
    )
    assert result["FailedEntryCount"] == 0


def event(name, **detail):
    e = sample(f"{name}.json")
    e["detail"].update(detail)
    return e


def dead_letters(emulation):
    sqs = emulation.client("sqs")
    found = {}
    for logical_id, url in emulation.physical.items():
        if "DeadLetters" in logical_id:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            found[logical_id] = messages.get("Messages", [])
    return found


def test_the_emulation_creates_exactly_what_the_template_declares(emulation, template):
    kinds = [r["Type"] for r in template["Resources"].values()]
    assert len(emulation.client("dynamodb").list_tables()["TableNames"]) == kinds.count("AWS::DynamoDB::Table")
    assert len(emulation.client("sqs").list_queues()["QueueUrls"]) == kinds.count("AWS::SQS::Queue")
    rules = emulation.client("events").list_rules(EventBusName=emulation.output("BusName"))["Rules"]
    assert len(rules) == kinds.count("AWS::Events::Rule")
    assert len(emulation.client("sns").list_subscriptions()["Subscriptions"]) == kinds.count("AWS::SNS::Subscription")
    mappings = len(emulation.mappings) + len(emulation.event_sources.streams)  # the queues' and the table stream's
    assert mappings == kinds.count("AWS::Lambda::EventSourceMapping")
    functions = {"ingest", "decide", "deliver", "feedback", "unsubscribe", "tally"}
    assert {f.name for f in emulation.functions.values()} == functions
    sqs = emulation.client("sqs")
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in resource["Properties"]:
            attributes = sqs.get_queue_attributes(
                QueueUrl=emulation.physical[logical_id], AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
            )["Attributes"]
            assert (
                json.loads(attributes["RedrivePolicy"])["maxReceiveCount"]
                == resource["Properties"]["RedrivePolicy"]["maxReceiveCount"]
            )
            assert int(attributes["VisibilityTimeout"]) == resource["Properties"]["VisibilityTimeout"]


def test_an_abandoned_cart_becomes_an_email_then_an_sms_when_the_email_bounces(emulation):
    bounce = "bounce+ann@simulator.amazonses.com"
    put(
        emulation,
        event("product.viewed"),
        event("cart.updated"),
        event("customer.identified", email=bounce),
        event("consent.updated"),
        event("consent.updated", event_id="ev-consent-sms", channel="sms"),
    )
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=3))
    [message] = emulation.sent_emails()
    assert "Hydrating serum" in message.raw_data and bounce in message.raw_data
    [(_, phone, text)] = emulation.sent_sms()
    assert phone == "+14155550100" and "https://shop.example/cart?utm_source=nextbest&utm_medium=sms" in text
    assert emulation.ses_event_counts["Bounce"] == 1


def test_an_opened_reminder_reaches_feedback_as_ses_publishes_it_and_cancels_the_follow_up(emulation):
    success = "success+ann@simulator.amazonses.com"
    put(emulation, event("cart.updated"), event("customer.identified", email=success), event("consent.updated"))
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=2))
    [message] = emulation.sent_emails()
    decision_id = message.raw_data.split("decision_id=", 1)[1].split(",", 1)[0].strip()
    opened = T0 + timedelta(hours=2, minutes=30)
    assert emulation.publish_engagement(decision_id, "Open", opened) == 1
    assert emulation.publish_engagement("no-such-decision", "Click", opened) == 0
    emulation.drain()
    item = emulation.client("dynamodb").get_item(
        TableName=emulation.output("TableName"), Key={"pk": {"S": f"d:{decision_id}"}, "sk": {"S": "DECISION"}}
    )["Item"]
    assert item["opened_at"]["S"].startswith("2026-11-02T11:30")
    emulation.advance(T0 + timedelta(days=4))  # the follow-up is due three days after the reminder
    assert len(emulation.sent_emails()) == 1 and emulation.ses_event_counts["Open"] == 1


def test_an_opt_out_between_decision_and_delivery_stops_the_message(emulation):
    put(emulation, event("cart.updated"), event("customer.identified"), event("consent.updated"))
    emulation.drain()
    # The cart is due at 10:00; the opt-out arrives at 09:59 and must win even though the alarm is armed.
    emulation.advance(T0 + timedelta(minutes=59))
    put(
        emulation,
        event(
            "consent.updated", event_id="ev-optout", granted=False, occurred_at=(T0 + timedelta(minutes=59)).isoformat()
        ),
    )
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=3))
    assert emulation.sent_emails() == [] and emulation.sent_sms() == []


def test_a_purchase_cancels_the_reminder(emulation):
    put(emulation, event("customer.identified"), event("consent.updated"), event("cart.updated"))
    emulation.drain()
    emulation.advance(T0 + timedelta(minutes=31))
    put(emulation, event("order.placed"))  # at 09:30, before the reminder is due at 10:00
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=3))
    assert emulation.sent_emails() == []


def test_invalid_events_go_to_the_dead_letter_queue_with_their_reason_and_the_batch_goes_on(emulation):
    broken = event("product.viewed", event_id="ev-broken")
    del broken["detail"]["anonymous_id"]
    unknown = event("product.viewed", event_id="ev-unknown")
    unknown["detail-type"] = "product.liked"
    put(emulation, broken, unknown, event("product.viewed", event_id="ev-fine"))
    emulation.drain()
    rejected = [m for messages in dead_letters(emulation).values() for m in messages]
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in rejected)
    assert reasons == ["missing_identifiers", "unknown_detail_type"]
    store_key = {"pk": {"S": "a:anon-1"}, "sk": {"S": "PROFILE"}}
    assert "Item" in emulation.client("dynamodb").get_item(TableName=emulation.output("TableName"), Key=store_key)


def test_a_record_that_keeps_failing_is_redriven_to_the_dead_letter_queue_after_max_receives(emulation):
    emulation.client("dynamodb").delete_table(TableName=emulation.output("TableName"))  # every write now fails
    put(emulation, event("product.viewed"))
    emulation.drain()
    ingest_dlq = [m for lid, ms in dead_letters(emulation).items() if lid.startswith("IngestEvents") for m in ms]
    assert len(ingest_dlq) == 1
    assert json.loads(ingest_dlq[0]["Body"])["detail"]["event_id"] == "ev-view-1"
    [ingest] = [f for f in emulation.functions.values() if f.name == "ingest"]
    assert ingest.invocations == 5  # maxReceiveCount deliveries, then SQS moved it aside


def test_a_rejected_event_is_replayed_once_the_cause_is_gone(emulation):
    from nextbest_cli.replay import replay

    early = event("product.viewed", event_id="ev-early", occurred_at=(T0 + timedelta(hours=1)).isoformat())
    put(emulation, early)  # a producer clock running an hour fast: rejected as future_timestamp
    emulation.drain()
    [dlq] = [url for lid, url in emulation.physical.items() if lid.startswith("IngestEventsDeadLetters")]
    emulation.advance(T0 + timedelta(hours=2))  # now it is in the past: the cause is gone
    report = replay(emulation.client("sqs"), dlq)
    assert report.moved == 1 and report.by_reason == {"future_timestamp": 1}
    emulation.drain()
    assert dead_letters(emulation)[next(k for k in emulation.physical if k.startswith("IngestEventsDeadLetters"))] == []
    profile = emulation.client("dynamodb").get_item(
        TableName=emulation.output("TableName"), Key={"pk": {"S": "a:anon-1"}, "sk": {"S": "PROFILE"}}
    )
    assert "sku-001" in [v["product_id"] for v in document(profile["Item"])["views"]]


def alarms(emulation, until):
    """One-time alarms due by ``until`` (the poll and the daily sweep are recurring schedules of their own)."""
    return [d for d in emulation.due_schedules(until) if d[2].schedule_expression.startswith("at(")]


def due_index(emulation) -> list[str]:
    """The profile keys the ``by_due`` index holds, in every shard."""
    found = []
    for shard in range(DUE_SHARDS):
        page = emulation.client("dynamodb").query(
            TableName=emulation.output("TableName"),
            IndexName="by_due",
            KeyConditionExpression="due_shard = :s",
            ExpressionAttributeValues={":s": {"S": str(shard)}},
        )
        found += [item["pk"]["S"] for item in page["Items"]]
    return found


def test_an_erased_customer_gets_no_reminder_for_a_cart_left_before(emulation):
    put(emulation, event("customer.identified"), event("consent.updated"), event("cart.updated"))
    emulation.drain()
    assert due_index(emulation) == ["c:cus_5"] and alarms(emulation, T0 + timedelta(days=1)) == []  # no schedule
    emulation.advance(T0 + timedelta(minutes=41))
    put(emulation, event("customer.erased"))
    emulation.drain()
    assert due_index(emulation) == []  # gone with her profile
    emulation.advance(T0 + timedelta(hours=3))
    assert emulation.sent_emails() == []


def table_items(emulation):
    return emulation.client("dynamodb").scan(TableName=emulation.output("TableName"))["Items"]


def test_an_erasure_leaves_no_alarm_or_tombstone_that_names_her_and_her_old_opt_in_does_not_bring_her_back(
    emulation,
):
    """Issue 13: an alarm armed under an identifier later merged away (its input held the e-mail address)
    survived the erasure (triggers now live in the profile and the due index, never under an old key);
    tombstones were unkeyed sha256 of each identifier, so reading the table told whether an address had been
    erased; a grant of consent made before the erasure, replayed from a dead-letter queue, brought her back."""
    zoe = "zoe@example.org"
    opt_in = event("consent.updated", email=zoe, event_id="ev-guest-consent", occurred_at="2026-11-02T08:59:00Z")
    del opt_in["detail"]["customer_id"]  # a guest who accepted e-mail at checkout
    put(emulation, opt_in, event("cart.updated", email=zoe))  # a guest's cart: due under e:zoe@example.org
    emulation.drain()
    assert due_index(emulation) == [f"e:{zoe}"]
    put(emulation, event("customer.identified", email=zoe), event("consent.updated"))  # signs in: c:cus_5
    emulation.drain()
    emulation.advance(T0 + timedelta(minutes=41))

    put(emulation, event("customer.erased"))
    emulation.drain()

    assert alarms(emulation, T0 + timedelta(days=1)) == [] and due_index(emulation) == []
    keys = ["c:cus_5", "a:anon-1", f"e:{zoe}", "p:+14155550100"]
    tombstones = {i["pk"]["S"] for i in table_items(emulation) if i["sk"]["S"] == "ERASED"}
    assert len(tombstones) == len(keys)
    assert not tombstones & {"x:" + hashlib.sha256(k.encode()).hexdigest() for k in keys}

    put(emulation, event("consent.updated", event_id="ev-consent-dlq"))  # an opt-in of 09:02, replayed from a DLQ
    emulation.drain()
    assert not any(i["pk"]["S"] in keys for i in table_items(emulation))


def test_decisions_and_an_unidentified_cookie_expire_and_a_customer_does_not(emulation):
    """Issue 13: decisions and profiles never expired. A decision is kept 180 days, a profile of a cookie alone
    13 months after its last event; a customer's profile (linked to redirects) until they are erased."""
    put(emulation, event("customer.identified"), event("consent.updated"), event("cart.updated"))
    put(emulation, event("product.viewed", event_id="ev-view-9", anonymous_id="anon-9"))
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=2))
    assert len(emulation.sent_emails()) == 1

    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(emulation)}
    decisions = [i for (_, sk), i in items.items() if sk == "DECISION"]
    assert decisions and all(
        int(i["expires_at"]["N"])
        == int((datetime.fromisoformat(i["decided_at"]["S"]) + timedelta(days=180)).timestamp())
        for i in decisions
    )
    cookie = items[("a:anon-9", "PROFILE")]
    assert int(cookie["expires_at"]["N"]) == int((T0 - timedelta(minutes=1) + timedelta(days=395)).timestamp())
    assert "expires_at" not in items[("c:cus_5", "PROFILE")]


def test_a_stop_reply_through_the_inbound_sms_topic_stops_the_next_text(emulation):
    put(emulation, event("customer.identified"), event("consent.updated", channel="sms"), event("cart.updated"))
    emulation.drain()
    emulation.advance(T0 + timedelta(minutes=10))  # she replies STOP after granting consent at 09:02
    stop = (EVENTS / "sms" / "stop.json").read_text()
    emulation.client("sns").publish(TopicArn=emulation.output("InboundSmsTopic"), Message=stop)
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=3))
    assert emulation.sent_sms() == []


def test_one_click_unsubscribe_from_the_email_header_stops_email(emulation):
    import email as mail_parser
    from urllib.parse import urlsplit

    put(emulation, event("customer.identified"), event("consent.updated"), event("cart.updated"))
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=1, minutes=5))
    [sent] = emulation.sent_emails()
    headers = mail_parser.message_from_string(sent.raw_data)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = headers["List-Unsubscribe"].strip("<>")
    assert "ann@example.org" not in link and "cus_5" not in link

    table, key = emulation.output("TableName"), {"pk": {"S": "c:cus_5"}, "sk": {"S": "PROFILE"}}
    assert emulation.call_url(link, "GET")["statusCode"] == 200  # a link scanner's GET changes nothing
    assert profile_of(emulation.client("dynamodb").get_item(TableName=table, Key=key)["Item"]).has_consent("email")
    forged = link[: link.index("?t=")] + "?t=" + urlsplit(link).query[2:-4] + "AAAA"
    assert emulation.call_url(forged, "POST", "List-Unsubscribe=One-Click")["statusCode"] == 400
    assert emulation.call_url(link, "POST", "List-Unsubscribe=One-Click")["statusCode"] == 200
    consent = profile_of(emulation.client("dynamodb").get_item(TableName=table, Key=key)["Item"]).consent["email"]
    assert consent.source == "list_unsubscribe" and not consent.granted


def test_a_text_that_replaces_a_bounced_email_at_night_waits_for_the_customers_morning(emulation):
    """The e-mail goes at 02:00 in Los Angeles (quiet hours cover texts, not e-mail); it bounces, and the SMS
    fallback must not go before 08:00 there (16:00 UTC)."""
    bounce = "bounce+ann@simulator.amazonses.com"
    put(
        emulation,
        event("cart.updated"),
        event("customer.identified", email=bounce, time_zone="America/Los_Angeles"),
        event("consent.updated"),
        event("consent.updated", event_id="ev-consent-sms", channel="sms"),
    )
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=6))  # 15:00 UTC, 07:00 in Los Angeles
    assert len(emulation.sent_emails()) == 1 and emulation.ses_event_counts["Bounce"] == 1
    assert emulation.sent_sms() == []
    emulation.advance(T0 + timedelta(hours=7, minutes=30))  # 08:30 in Los Angeles
    [(_, phone, text)] = emulation.sent_sms()
    assert phone == "+14155550100" and "https://shop.example/cart?utm_source=nextbest&utm_medium=sms" in text
