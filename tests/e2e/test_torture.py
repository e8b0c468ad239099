"""A small torture run without faults: the harness finds nothing to report, and its table has every row."""

import json

from nextbest_lab import torture


def test_a_small_run_without_faults_reports_zero_everywhere(cdk_out, tmp_path):
    results = torture.run(customers=40, days=2, rates=[0.0], out=tmp_path, cdk_out=cdk_out)
    outcome = results["rates"]["0"]
    assert {key: outcome[key] for key in torture.MUST_BE_ZERO} == dict.fromkeys(torture.MUST_BE_ZERO, 0)
    assert torture.clean(results)
    assert outcome["faults_injected"] == 0 and outcome["emails_sent"] > 0 and outcome["events_valid"] > 0
    # Only the simulator's malformed events were dead-lettered, each with its reason
    assert outcome["dlq_entries"] == outcome["events_rejected"] > 0
    assert all(not key.endswith(":(none)") for key in outcome["dlq_by_reason"])
    assert json.loads((tmp_path / "results.json").read_text())["rates"]["0"]["events_lost"] == 0
    assert [key for key, _ in torture.rows(results)][: len(torture.ROWS)] == [key for key, _ in torture.ROWS]
