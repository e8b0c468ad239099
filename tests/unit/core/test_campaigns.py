"""Campaign files: the repository's own validate, and broken ones fail naming the file and field."""

from datetime import date
from pathlib import Path

import pytest
from nextbest.core.campaigns import CampaignError, load_campaigns, load_policy, trigger_delays, with_holdout_floor
from nextbest.core.messages import check_creatives, render, sample_variables
from nextbest_cli.approvals import approve

CAMPAIGNS = Path(__file__).resolve().parents[3] / "campaigns"
GOOD = (CAMPAIGNS / "cart-abandonment.toml").read_text()


def test_the_repository_campaigns_load_and_render_for_every_channel():
    campaigns = load_campaigns(CAMPAIGNS)
    assert campaigns
    assert all(c.status == "approved" for c in campaigns)  # an edit without re-approval would make it a draft
    for campaign in campaigns:
        for variant in campaign.variants:
            for channel in campaign.channels:
                message = render(variant.creative, channel, sample_variables())
                assert message.text and "{{" not in message.text
    assert load_policy(CAMPAIGNS).caps["email"].day == 1


def test_given_approved_without_an_approver_then_the_file_and_field_are_named(tmp_path):
    (tmp_path / "bad.toml").write_text(GOOD.replace('approved_by = "marketing-lead"', ""))
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
    campaign = next(c for c in load_campaigns(CAMPAIGNS) if c.id == "cart-abandonment")
    variables = sample_variables() | {"first_name": "<b>Ann</b>"}
    message = render(campaign.variants[0].creative, "email", variables)
    assert "&lt;b&gt;Ann&lt;/b&gt;" in (message.html or "")
    assert "<b>Ann</b>" in message.text


def with_policy(directory: Path, approvers: tuple[str, ...] = ("marketing-lead", "cmo")) -> Path:
    (directory / "policy.toml").write_text(f"approvers = {list(approvers)!r}\n".replace("'", '"'))
    return directory


def test_an_edited_creative_returns_the_campaign_to_draft_until_approved_again(tmp_path):
    with_policy(tmp_path)
    path = tmp_path / "cart.toml"
    path.write_text(GOOD.replace("your cart is waiting", "come back"))
    [edited] = load_campaigns(tmp_path)
    assert edited.status == "draft" and "approve it again" in (edited.review_note or "")
    approved = approve(path, "cmo", date(2026, 11, 24))
    [reloaded] = load_campaigns(tmp_path)
    assert reloaded.status == "approved" and reloaded.approved_by == "cmo" and reloaded.review_note is None
    assert approved.approved_digest == reloaded.digest() and "# Reminds a shopper" in path.read_text()


def test_a_bad_policy_names_the_file_and_field(tmp_path):
    (tmp_path / "policy.toml").write_text("[caps]\nemail = { day = 99 }\n")
    with pytest.raises(CampaignError, match=r"policy\.toml.*caps\.email\.day"):
        load_policy(tmp_path)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("priority = 10", "priority = 10\noverride = true"),
        ("holdout_percent = 10", "holdout_percent = 1"),
        ("cooldown_hours = 24", "cooldown_hours = 1"),
        ("priority = 10", "priority = 10\nmax_sends_per_hour = 100000"),
        ("priority = 10", "priority = 10\nbudget = 1000000"),
        ("extra_discount_percent = 10", "extra_discount_percent = 50"),
    ],
    ids=["override", "holdout", "cooldown", "hourly cap", "budget", "follow-up escalation"],
)
def test_an_approval_covers_targeting_experiment_caps_budget_and_escalation_not_only_the_words(tmp_path, old, new):
    with_policy(tmp_path)
    assert old in GOOD
    (tmp_path / "cart.toml").write_text(GOOD.replace(old, new, 1))
    [after] = load_campaigns(tmp_path)
    assert after.status == "draft" and "approve it again" in (after.review_note or "")


def test_a_copy_of_an_approved_file_under_a_new_id_is_not_approved(tmp_path):
    with_policy(tmp_path)
    (tmp_path / "cart.toml").write_text(GOOD)
    (tmp_path / "copy.toml").write_text(GOOD.replace('id = "cart-abandonment"', 'id = "cart-copy"'))
    by_id = {c.id: c for c in load_campaigns(tmp_path)}
    assert by_id["cart-abandonment"].status == "approved" and by_id["cart-copy"].status == "draft"


def test_only_an_approver_named_in_the_policy_can_approve_or_keep_an_approval(tmp_path):
    with_policy(tmp_path, approvers=("cmo",))
    path = tmp_path / "cart.toml"
    path.write_text(GOOD)
    [kept] = load_campaigns(tmp_path)  # approved by marketing-lead, who is not an approver here
    assert kept.status == "draft" and "not among" in (kept.review_note or "")
    with pytest.raises(CampaignError, match="may not approve"):
        approve(path, "intern", date(2026, 12, 1))
    assert approve(path, "cmo", date(2026, 12, 1)).status == "approved"


def test_a_creative_with_a_broken_template_fails_the_check_and_the_approval(tmp_path):
    with_policy(tmp_path)
    path = tmp_path / "cart.toml"
    path.write_text(GOOD.replace("{{ first_name", "{{ first_name |", 1))
    assert "{{ first_name |" in path.read_text()
    with pytest.raises(CampaignError, match=r"cart-abandonment: variants\."):
        check_creatives(load_campaigns(tmp_path))
    with pytest.raises(CampaignError, match=r"cart-abandonment: variants\."):
        approve(path, "cmo", date(2026, 12, 1))


def test_a_template_that_would_fail_for_a_customer_without_a_category_page_fails_the_check(tmp_path):
    # Given the cart reminder linking the category of the last product viewed, unguarded, then guarded
    with_policy(tmp_path)
    link = '<a href="{{ category.url }}">More in {{ category }}</a>'
    (tmp_path / "cart.toml").write_text(GOOD.replace("</p>", "</p>" + link, 1))
    with pytest.raises(CampaignError, match=r"cart-abandonment: variants\.reminder\.email: .* has no attribute .url."):
        check_creatives(load_campaigns(tmp_path))
    (tmp_path / "cart.toml").write_text(GOOD.replace("</p>", "</p>{% if category %}" + link + "{% endif %}", 1))
    assert check_creatives(load_campaigns(tmp_path))


def test_a_holdout_floor_raises_every_smaller_holdout_to_it_and_keeps_the_approvals():
    campaigns = load_campaigns(CAMPAIGNS)
    floored = with_holdout_floor(campaigns, 30)
    assert [c.id for c in floored] == [c.id for c in campaigns]
    for before, after in zip(campaigns, floored, strict=True):
        assert after.holdout_percent == max(before.holdout_percent, 30)
        assert after.status == before.status  # only ever sends less: no new approval needed
    assert with_holdout_floor(campaigns, 0) == campaigns
