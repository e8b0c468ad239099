"""Campaign files: the repository's own validate, and broken ones fail naming the file and field."""

from pathlib import Path

import pytest
from nextbest.campaigns import CampaignError, load_campaigns, trigger_delays
from nextbest.messages import render, sample_variables

CAMPAIGNS = Path(__file__).resolve().parents[2] / "campaigns"
GOOD = (CAMPAIGNS / "cart-abandonment.toml").read_text()


def test_the_repository_campaigns_load_and_render_for_every_channel():
    campaigns = load_campaigns(CAMPAIGNS)
    assert campaigns
    for campaign in campaigns:
        for channel in campaign.channels:
            message = render(campaign, channel, sample_variables())
            assert message.text


def test_given_approved_without_an_approver_then_the_file_and_field_are_named(tmp_path):
    (tmp_path / "bad.toml").write_text(GOOD.replace('approved_by = "marketing-lead"\n', ""))
    with pytest.raises(CampaignError, match=r"bad\.toml.*approved_by"):
        load_campaigns(tmp_path)


def test_given_a_typo_in_a_field_then_it_is_rejected(tmp_path):
    (tmp_path / "typo.toml").write_text(GOOD.replace("priority = 10", "priorty = 10"))
    with pytest.raises(CampaignError, match=r"typo\.toml.*priorty"):
        load_campaigns(tmp_path)


def test_a_draft_campaign_does_not_arm_triggers(tmp_path):
    (tmp_path / "draft.toml").write_text(GOOD.replace('status = "approved"', 'status = "draft"'))
    assert trigger_delays(load_campaigns(tmp_path)) == {}


def test_html_is_autoescaped_but_text_is_not():
    campaign = load_campaigns(CAMPAIGNS)[0]
    variables = sample_variables() | {"first_name": "<b>Ann</b>"}
    message = render(campaign, "email", variables)
    assert "&lt;b&gt;Ann&lt;/b&gt;" in (message.html or "")
    assert "<b>Ann</b>" in message.text
