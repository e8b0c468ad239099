"""A small demo run: the summary's counters add up and the guarantees hold on what moto recorded."""

import contextlib
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

from nextbest_cli.main import main
from nextbest_lab import demo

KEYS = {
    "events_published",
    "events_ingested",
    "events_rejected",
    "profiles",
    "identity_merges",
    "decisions",
    "emails_sent",
    "email_bounces",
    "sms_fallbacks",
    "optout_violations",
    "quiet_hour_violations",
    "cap_violations",
    "duplicate_sends",
    "dlq_messages",
    "email_opens",
    "email_clicks",
    "response_orders",
    "true_effects",
    "elapsed_s",
}


def test_a_small_demo_delivers_without_violations(cdk_out, tmp_path):
    summary = demo.run(customers=300, seed=11, days=4, out=tmp_path, progress=False, cdk_out=cdk_out)
    assert set(summary) >= KEYS
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["events_ingested"] + summary["events_rejected"] == summary["events_published"]
    assert summary["events_rejected"] > 0 and summary["dlq_messages"] == summary["events_rejected"]
    assert summary["identity_merges"] > 0 and 0 < summary["profiles"] <= 300 * 2
    assert summary["decisions"] > 0 and summary["emails_sent"] > 0 and summary["email_bounces"] > 0
    assert summary["sms_fallbacks"] > 0
    assert summary["optout_violations"] == 0 and summary["quiet_hour_violations"] == 0
    assert summary["cap_violations"] == 0
    assert summary["duplicate_sends"] == 0 and summary["unattributable_sends"] == 0
    # Shoppers respond: opens and clicks come back through SES events, extra orders through the bus.
    assert 0 < summary["email_clicks"] < summary["email_opens"] < summary["emails_sent"]
    cart = summary["true_effects"]["cart-abandonment"]
    assert cart["purchase_probability"]["reminder"] > 0 and cart["sample"]["recipients"] > 0
    logs = "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert '"service":"deliver"' in logs  # the functions did log…
    assert "simulator.amazonses.com" not in logs and "+1415" not in logs  # …but never an address or number
    # The report's counters agree with the decision log they were kept beside, without rescanning it.
    log = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    decisions = [d for d in log if not d.get("fallback_of")]  # a fallback re-routes a decision, not a new one
    counters = {(i["pk"]["S"], i["sk"]["S"]): i for i in json.loads((tmp_path / "counters.json").read_text())}
    for action, arm in (("send", "treatment"), ("holdout", "holdout"), ("holdout", "global_control")):
        firsts = (d for d in decisions if d["action"] == action and d["group"] == arm and not d.get("step"))
        logged = Counter(d["campaign_id"] for d in firsts)  # an episode is one recipient, its follow-ups none
        kept = {pk[2:]: int(i["recipients"]["N"]) for (pk, sk), i in counters.items() if sk == f"ARM#{arm}"}
        assert kept == {c: n for c, n in logged.items() if n}
    decided = Counter(d["campaign_id"] for d in decisions if d["action"] == "send")
    funnel = Counter()
    for (pk, sk), item in counters.items():
        if sk.startswith("FUNNEL#"):
            funnel[pk[2:]] += int(item.get("decided", {"N": 0})["N"])
    assert funnel == decided
    assert 'id="campaigns"' in (tmp_path / "report.html").read_text()
    readme_commands_work_on_the_demo_files(tmp_path, summary)


def readme_commands_work_on_the_demo_files(out, summary):
    """The README's evaluate-policy examples, as written, on the demo's log; explain by a customer's e-mail."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    examples = re.findall(r"^\.venv/bin/nextbest (evaluate-policy --log \S+ --policy \S+)", readme, re.M)
    assert len(examples) == 2
    for example in examples:
        assert main(example.replace(".nextbest/demo/", f"{out}/").split()) == 0
    # The customer the summary names, found by their e-mail address through the links written beside the log
    customer = f"c:{summary['example_customer']}"
    links = json.loads((out / "identities.json").read_text())
    email = next(key[2:] for key, target in links.items() if target == customer and key.startswith("e:"))
    assert main(["explain", email.upper(), "--log", str(out / "decisions.jsonl")]) == 0


def test_the_progress_bar_never_writes_into_a_function_log(monkeypatch):
    # Given the demo's bar, started on a terminal (FORCE_COLOR: rich draws on it as on a real one)
    monkeypatch.setenv("FORCE_COLOR", "1")
    terminal, log = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    with demo.progress_bar(True) as bar:
        task = bar.add_task("demo", total=3, day="")
        # When it redraws while a function runs, the function's output going to its log as the emulation sends it
        with contextlib.redirect_stdout(log):
            for _ in range(3):
                print('{"_aws": ', end="")
                bar.update(task, advance=1, day="Mon 02 Nov 08:05")
                bar.refresh()  # what its refresh thread does ten times a second
                print("{}}")
    # Then the log holds the function's lines alone (EMF lines stay JSON), and the terminal the bar
    assert log.getvalue() == '{"_aws": {}}\n' * 3
    assert "simulated Mon 02 Nov 08:05" in terminal.getvalue()
