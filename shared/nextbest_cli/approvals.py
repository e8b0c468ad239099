"""Approving a campaign: the reviewer's signature, written into the campaign file itself."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from nextbest.core.campaigns import Campaign, CampaignError, load_policy, read_toml
from nextbest.core.messages import check_creatives


def approve(path: Path, approver: str, on: date) -> Campaign:
    """Record an approval in the file itself (status, approver, date, digest), keeping its comments; only one
    of policy.toml's ``approvers`` may approve, and only a campaign whose creatives render."""
    approvers = load_policy(path.parent).approvers
    if approver not in approvers:
        raise CampaignError(f"{approver} may not approve campaigns (policy.toml approvers: {', '.join(approvers)})")
    campaign = Campaign.model_validate(read_toml(path) | {"status": "draft", "approved_digest": None})
    check_creatives([campaign])
    text = path.read_text()
    values = {
        "status": "approved",
        "approved_by": approver,
        "approved_at": on.isoformat(),
        "approved_digest": campaign.digest(),
    }
    head, sep, tail = text.partition("\n[")  # top-level keys come before the first table
    for key, value in values.items():
        line = f"{key} = {value}" if key == "approved_at" else f"{key} = {json.dumps(value)}"
        head, found = re.subn(rf"(?m)^{key}\s*=.*$", line, head)
        if not found:
            head = head.rstrip("\n") + "\n" + line + "\n"
    path.write_text(head + sep + tail)
    return Campaign.model_validate(read_toml(path))
