"""Uplift against the holdout: counters that merge, intervals that stay valid when looked at every day."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nextbest_lab.uplift import ArmTotals, boundary_factor, coverage, fixed_n_interval, rho_squared, uplift

revenues = st.lists(st.one_of(st.just(0.0), st.floats(0.5, 5000)), max_size=40)


@given(revenues, revenues)
def test_given_two_batches_of_recipients_when_their_totals_are_added_then_they_equal_the_totals_of_all(a, b):
    merged = ArmTotals.of(a) + ArmTotals.of(b)
    whole = ArmTotals.of(a + b)
    assert (merged.recipients, merged.conversions) == (whole.recipients, whole.conversions)
    assert merged.revenue == pytest.approx(whole.revenue)
    assert merged.revenue_sq == pytest.approx(whole.revenue_sq)


def test_given_a_recipient_with_three_orders_when_increments_are_added_then_sums_are_per_recipient():
    # Given one recipient, then orders of 10, 20 and 5 attributed to them one by one
    totals = ArmTotals(recipients=1)
    so_far = 0.0
    for value in (10.0, 20.0, 5.0):
        totals += ArmTotals.order(value, so_far)
        so_far += value
    # Then they count as one conversion with revenue 35 (squared per recipient, not per order)
    assert totals == ArmTotals(1, 1, 35.0, 35.0**2)


def test_given_a_dynamodb_item_when_read_then_decimals_and_missing_counters_are_accepted():
    item = {"recipients": Decimal(120), "conversions": Decimal(7), "revenue": Decimal("431.50")}
    assert ArmTotals.from_counters(item) == ArmTotals(120, 7, 431.5, 0.0)


def test_given_too_few_conversions_when_uplift_is_asked_then_it_says_not_enough_data():
    report = uplift(ArmTotals(5000, 200, 12_000.0, 9e6), ArmTotals(400, 4, 240.0, 2e4))
    for result in (report.conversion, report.revenue_per_recipient):
        assert result.status == "not_enough_data"
        assert result.absolute is None and result.relative is None and not result.significant()
    assert report.conversion.treatment == pytest.approx(0.04)  # the means are still shown


def test_given_enough_conversions_for_rate_but_not_revenue_then_only_the_rate_is_reported():
    report = uplift(ArmTotals(5000, 200, 12_000.0, 9e6), ArmTotals(600, 15, 900.0, 1e5))
    assert report.conversion.status == "ok"
    assert report.revenue_per_recipient.status == "not_enough_data"


def test_given_known_totals_when_uplift_is_computed_then_it_is_the_difference_with_the_boundary_times_the_se():
    treatment, control = ArmTotals(9000, 450, 27_000.0, 2.0e7), ArmTotals(1000, 30, 1_800.0, 1.4e6)
    report = uplift(treatment, control)
    conv = report.conversion.absolute
    assert conv is not None
    se = math.sqrt(0.05 * 0.95 * 9000 / 8999 / 9000 + 0.03 * 0.97 * 1000 / 999 / 1000)
    assert conv.estimate == pytest.approx(0.02)
    assert conv.upper - conv.estimate == pytest.approx(boundary_factor(10_000) * se)
    assert conv.estimate - conv.lower == pytest.approx(boundary_factor(10_000) * se)
    relative = report.conversion.relative
    assert relative is not None
    assert relative.estimate == pytest.approx(0.05 / 0.03 - 1)
    assert relative.lower < relative.estimate < relative.upper
    assert relative.lower > -1


def test_given_any_sample_size_then_the_sequence_is_wider_than_the_fixed_n_interval():
    # The price of looking every day: ~3 standard errors instead of 1.96, growing only like sqrt(log t).
    factors = [boundary_factor(t) for t in (50, 200, 2000, 20_000, 200_000, 2_000_000)]
    assert all(f > 1.96 for f in factors)
    assert factors[-1] < 4.5


def test_given_a_target_size_then_the_mixture_is_tuned_to_be_narrowest_there():
    def width(t: float, rho2: float) -> float:
        return math.sqrt(2 * (t * rho2 + 1) / (t * rho2) * math.log(math.sqrt(t * rho2 + 1) / 0.05))

    best = rho_squared(5000)
    assert all(width(5000, best) <= width(5000, best * f) + 1e-3 for f in (0.25, 0.5, 0.8, 1.25, 2, 4))


def test_given_a_lone_look_then_the_fixed_n_interval_is_the_wald_interval():
    treatment, control = ArmTotals(9000, 450, 27_000.0, 2.0e7), ArmTotals(1000, 30, 1_800.0, 1.4e6)
    naive = fixed_n_interval(treatment, control).conversion.absolute
    assert naive is not None
    se = math.sqrt(0.05 * 0.95 * 9000 / 8999 / 9000 + 0.03 * 0.97 * 1000 / 999 / 1000)
    assert naive.upper - naive.estimate == pytest.approx(1.959964 * se, rel=1e-5)


def test_given_daily_looks_at_experiments_with_a_known_effect_then_the_sequence_covers_the_truth_at_every_look():
    # Given 300 experiments like the shop's (4% base rate, +25% lift, lognormal baskets, 10% holdout),
    # each looked at 60 times: the 95% sequence must cover the true uplift at every look in >= 90% of runs,
    # while the fixed-n interval, read the same way, misses at some look far more often.
    for metric in ("conversion", "revenue_per_recipient"):
        sequence = coverage(300, seed=11, metric=metric)
        fixed = coverage(300, seed=11, metric=metric, method="fixed")
        assert sequence >= 0.90, (metric, sequence)
        assert fixed <= sequence - 0.2, (metric, fixed, sequence)


def test_given_a_rare_conversion_and_a_small_lift_then_coverage_still_holds():
    assert coverage(200, seed=3, base_rate=0.02, lift=0.1, order_sigma=1.2) >= 0.90


def test_given_no_effect_when_looked_at_daily_then_the_sequence_rarely_claims_one():
    # Type I error under continuous monitoring is what stops a team shipping a useless campaign.
    assert coverage(200, seed=5, lift=0.0, metric="conversion") >= 0.93


def test_given_a_real_effect_and_enough_recipients_then_the_sequence_eventually_detects_it():
    rng = random.Random(1)
    values = lambda n, rate: [rng.lognormvariate(3.6, 1.0) if rng.random() < rate else 0.0 for _ in range(n)]  # noqa: E731
    report = uplift(ArmTotals.of(values(45_000, 0.05)), ArmTotals.of(values(5_000, 0.04)))
    assert report.conversion.significant()
    assert report.conversion.absolute is not None and report.conversion.absolute.covers(0.01)
