"""The report renders in headless Chromium, and what it shows is what the statistics say.

Figures are read back from the page Chromium rendered (not from the HTML string) and compared with
``nextbest_lab.uplift`` computed here from the same counters; the charts are checked by their geometry.
"""

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nextbest.core.campaigns import load_campaigns
from nextbest.core.experiments import allocation
from nextbest_lab import report
from nextbest_lab.uplift import ArmTotals, uplift
from playwright.sync_api import sync_playwright

CAMPAIGNS = load_campaigns(Path(__file__).resolve().parents[2] / "campaigns")
CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
NUMBER = re.compile(r"[+-]?[\d,]+\.\d+")


def arm(rng: random.Random, recipients: int, rate: float, mean_order: float) -> ArmTotals:
    return ArmTotals.of([rng.lognormvariate(0, 0.6) * mean_order if rng.random() < rate else 0.0
                         for _ in range(recipients)])  # fmt: skip


def items(campaign: str, sk: str, **numbers: float) -> dict:
    return {"pk": {"S": f"s:{campaign}"}, "sk": {"S": sk}} | {k: {"N": repr(v)} for k, v in numbers.items()}


def arm_items(campaign: str, name: str, totals: ArmTotals) -> dict:
    return items(campaign, f"ARM#{name}", recipients=totals.recipients, conversions=totals.conversions,
                 revenue=totals.revenue, revenue_sq=totals.revenue_sq)  # fmt: skip


@pytest.fixture(scope="module")
def counters():
    """A cart campaign that works, an at-risk campaign that does nothing, a browse campaign still collecting."""
    rng = random.Random(5)
    arms = {
        "cart-abandonment": {"treatment": arm(rng, 3000, 0.09, 50), "holdout": arm(rng, 700, 0.04, 50),
                             "global_control": arm(rng, 250, 0.04, 50)},
        "at-risk": {"treatment": arm(rng, 2000, 0.05, 60), "holdout": arm(rng, 900, 0.05, 60)},
        "browse-abandonment": {"treatment": arm(rng, 80, 0.05, 40), "holdout": arm(rng, 9, 0.05, 40)},
    }  # fmt: skip
    found = [arm_items(c, name, totals) for c, group in arms.items() for name, totals in group.items()]
    found += [
        items("cart-abandonment", "FUNNEL#reminder#email", decided=1800, sent=1790, delivered=1700, bounced=60,
              opened=800, clicked=240, conversions=160, revenue=8000.0),
        items("cart-abandonment", "FUNNEL#urgency#email", decided=1200, sent=1190, delivered=1150, opened=400,
              clicked=90, conversions=110, revenue=5000.0),
        items("cart-abandonment", "VARIANT#reminder", sends=1800, conversions=160),
        items("cart-abandonment", "VARIANT#urgency", sends=1200, conversions=110),
        items("cart-abandonment", "DAY#2026-11-02", **{"sends#reminder": 300, "sends#urgency": 300}),
        items("cart-abandonment", "DAY#2026-11-03", **{"sends#reminder": 500, "sends#urgency": 100}),
        items("win-back", "COUPONS", issued=400, redeemed=38, orders=41, revenue=2870.5),
    ]  # fmt: skip
    return arms, found


@pytest.fixture(scope="module")
def page(counters, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    report.write(path, CAMPAIGNS, counters[1], "a test", datetime(2026, 11, 9, tzinfo=UTC))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        rendered = browser.new_page(viewport={"width": 1280, "height": 900})
        rendered.goto(path.as_uri())
        rendered.screenshot(path=str(path.with_suffix(".png")), full_page=True)
        yield rendered
        browser.close()


def figure(page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').inner_text().strip()


def numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in NUMBER.findall(text)]


def test_the_uplift_shown_is_the_confidence_sequence_of_the_counters(page, counters):
    arms = counters[0]
    for campaign, group in arms.items():
        control = group["holdout"] + group.get("global_control", ArmTotals())
        expected = uplift(group["treatment"], control)
        conversion = expected.conversion.absolute
        revenue = expected.revenue_per_recipient.absolute
        if conversion is None:
            assert figure(page, f"{campaign}.conversion_uplift") == "not enough data yet"
            waiting = figure(page, f"{campaign}.verdict")
            assert waiting.startswith("collecting") and f"control {control.recipients}/100 recipients" in waiting
            continue
        shown = numbers(figure(page, f"{campaign}.conversion_uplift"))
        assert shown == pytest.approx([round(100 * v, 2) for v in conversion.__dict__.values()], abs=0.006)
        assert revenue is not None  # the fixture has enough converters for both metrics
        shown = numbers(figure(page, f"{campaign}.revenue_uplift"))
        assert shown == pytest.approx([round(v, 2) for v in revenue.__dict__.values()], abs=0.006)
        assert figure(page, f"{campaign}.treated") == f"{group['treatment'].recipients:,}"
        assert numbers(figure(page, f"{campaign}.rate_control")) == [round(100 * control.conversion_rate(), 2)]
    assert figure(page, "cart-abandonment.verdict") == "works"
    assert figure(page, "at-risk.verdict") == "no effect shown"


def test_totals_funnel_and_bandit_match_the_counters(page):
    assert figure(page, "total.decided") == "3,000" and figure(page, "total.opened") == "1,200"
    assert figure(page, "total.revenue") == "13,000.00"
    row = page.locator('[data-funnel="cart-abandonment.reminder.email"]')
    assert row.locator('[data-stage="clicked"]').inner_text() == "240"
    expected = allocation(next(c for c in CAMPAIGNS if c.id == "cart-abandonment"),
                          {"reminder": (1800, 160), "urgency": (1200, 110)})  # fmt: skip
    for variant, p in expected.items():
        assert numbers(figure(page, f"cart-abandonment.{variant}.allocation")) == [round(100 * p, 2)]


def test_the_charts_are_drawn_where_the_figures_say(page):
    """The cart's interval lies right of the dashed zero line, with its estimate inside; funnel bars shrink."""
    forest = page.locator("svg").first
    zero = forest.locator("line.zero").bounding_box()
    working = forest.locator("line[stroke='#3a9b5c']").bounding_box()
    estimate = forest.locator("circle[fill='#3a9b5c']").bounding_box()
    assert zero and working and estimate
    assert working["x"] > zero["x"] and working["width"] > 20
    assert working["x"] <= estimate["x"] + estimate["width"] / 2 <= working["x"] + working["width"]
    bars = page.locator('[data-funnel-chart="cart-abandonment"] rect')
    widths = [bars.nth(k).bounding_box()["width"] for k in range(len(report.FUNNEL))]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[3] > widths[-1] > 0
    days = page.locator('[data-bandit-chart="cart-abandonment"] svg rect')
    assert days.count() == 2 * 2 + 2  # two days by two variants, and the legend
    shares = [days.nth(k).bounding_box()["height"] for k in range(4)]
    assert shares[0] == pytest.approx(shares[1], abs=1) and shares[2] > 4 * shares[3]  # 50/50, then 500/100


def test_coupons_show_codes_issued_and_redeemed_the_rate_and_the_revenue_of_orders_that_used_one(page):
    assert figure(page, "win-back.coupons_issued") == "400" and figure(page, "win-back.coupons_redeemed") == "38"
    assert figure(page, "win-back.redemption_rate") == "9.50%"
    assert figure(page, "win-back.coupon_orders") == "41" and figure(page, "win-back.coupon_revenue") == "2,870.50"
    listed = page.locator("[data-coupons]")
    # the shipped campaigns whose offer carries a code (win-back's signed code), not the cart reminder's
    assert [listed.nth(k).get_attribute("data-coupons") for k in range(listed.count())] == ["win-back"]
