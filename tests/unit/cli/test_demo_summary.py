"""What a first `make demo` prints: a table a reader can take in at 100 columns, not JSON."""

from __future__ import annotations

import io
import re

from nextbest_cli.commands.demo import WIDTH, print_summary, verdict
from rich.console import Console

SUMMARY = {
    "events_published": 3780,
    "events_ingested": 3762,
    "events_rejected": 18,
    "rejected_by_reason": {"invalid_detail": 9, "missing_identifiers": 5, "future_timestamp": 4},
    "profiles": 328,
    "identity_merges": 404,
    "decisions": 759,
    "decisions_by_action": {"defer": 23, "holdout": 56, "none": 430, "send": 250},
    "messages_by_campaign": {
        "at-risk:holdout": 17,
        "at-risk:send": 56,
        "browse-abandonment:holdout": 29,
        "browse-abandonment:send": 84,
        "cart-abandonment:holdout": 10,
        "cart-abandonment:send": 107,
        "post-purchase:send": 1,
        "replenishment:send": 2,
    },
    "emails_sent": 224,
    "sms_sent": 26,
    "email_bounces": 12,
    "email_complaints": 2,
    "sms_fallbacks": 3,
    "optout_violations": 0,
    "quiet_hour_violations": 0,
    "cap_violations": 0,
    "duplicate_sends": 0,
    "unattributable_sends": 0,
    "dlq_messages": 18,
    "customers": 300,
    "simulated_days": 3,
    "example_customer": "cus_00017",
    "email_opens": 78,
    "email_clicks": 29,
    "response_orders": 14,
    "true_effects": {
        "cart-abandonment": {
            "purchase_probability": {"reminder": 0.12, "urgency": 0.06},
            "sample": {
                "recipients": 116,
                "conversion": 0.0517,
                "revenue_per_recipient": 4.17,
                "conversion_without": 0.1121,
            },
        },
        "win-back": {"purchase_probability": {"*": 0.03}, "sample": None},
    },
    "elapsed_s": 174.3,
}


def rendered(summary: dict[str, object], width: int) -> str:
    out = io.StringIO()
    print_summary(Console(file=out, width=width, color_system=None), summary, ".nextbest/demo")
    return out.getvalue()


def test_the_summary_fits_100_columns_with_each_figure_beside_its_label():
    # When the summary is printed on a terminal wider than 100 columns
    text = rendered(SUMMARY, WIDTH)
    lines = text.splitlines()
    # Then no line is wider than 100, no JSON is shown, and each figure stays on its label's line
    assert max(len(line) for line in lines) <= WIDTH
    assert "{" not in text and '"' not in text
    assert re.search(r"events +3,780 published, 3,762 ingested, 18 rejected", text)
    assert re.search(r"cart-abandonment +107 +10 +reminder \+12%, urgency \+6% +\+5\.2 pts on 11\.2%, n=116", text)
    assert re.search(r"win-back +0 +0 +\+3% +no recipients", text)
    assert re.search(r"opt-out violations 0 +duplicate sends 0 +quiet-hour violations 0 +cap violations 0", text)


def test_it_points_to_the_report_and_explains_the_dead_letters():
    text = " ".join(rendered(SUMMARY, WIDTH).split())
    assert "report .nextbest/demo/report.html" in text
    assert "explain .venv/bin/nextbest explain cus_00017" in text
    # the malformed events: why they are there, where they wait and with which reasons
    assert "18 events were refused on purpose" in text and "ingest dead-letter queue" in text
    assert "(invalid_detail 9, missing_identifiers 5, future_timestamp 4)" in text and "nextbest replay" in text


def test_a_violation_is_called_out():
    text = rendered(SUMMARY | {"cap_violations": 2}, WIDTH)
    assert re.search(r"cap violations 2", text) and "NOT ALL 0" in text


def test_a_dead_letter_beyond_the_malformed_events_fails_the_demo_and_points_to_the_logs():
    out = io.StringIO()
    console = Console(file=out, width=WIDTH, color_system=None)
    assert verdict(console, SUMMARY, ".nextbest/demo") == 0 and out.getvalue() == ""
    assert verdict(console, SUMMARY | {"dlq_messages": SUMMARY["events_rejected"] + 906}, ".nextbest/demo") == 1
    assert "906 messages other than the malformed events" in out.getvalue() and ".nextbest/demo/logs" in out.getvalue()
