"""The uplift report against the shop simulator's known truth (issue 7): shoppers who respond, decisions made by
the domain code, attribution counters read as the report reads them."""

from collections import Counter

import pytest
from nextbest_lab import experiment
from nextbest_lab.simulator import ResponseModel, simulate


@pytest.fixture(scope="module")
def shop():
    """A small shop's week with every campaign holding out half its customers."""
    campaigns, policy = experiment.shipped(holdout_percent=50)
    responses = ResponseModel(seed=21)
    population = simulate(customers=300, days=5, seed=21)
    run = experiment.Shop(population, campaigns, policy, responses, experiment._models(), key_prefix="t.").run()
    return run, responses


def test_given_a_held_out_decision_then_its_customer_never_opens_clicks_or_buys_because_of_it(shop):
    run, _ = shop
    held = {e.decision_id for e in run.exposures if e.held_out}
    sent = {e.decision_id for e in run.exposures if not e.held_out}
    responded = {o.response_to for orders in run.orders.values() for o in orders if o.response_to}
    assert held and sent and run.engagements and responded
    assert {decision for decision, _, _ in run.engagements} <= sent
    assert responded <= sent


def test_given_the_decisions_then_the_counters_count_each_episode_as_one_recipient_of_its_arm(shop):
    run, _ = shop
    decided = Counter((e.campaign_id, e.held_out) for e in run.exposures if e.step == 0)
    assert any(e.step > 0 for e in run.exposures)  # follow-ups were decided, and are not recipients
    for campaign in {c for c, _ in decided}:
        treatment, control = run.arms(campaign)
        assert (treatment.recipients, control.recipients) == (decided[campaign, False], decided[campaign, True])


def test_given_the_realised_responses_then_the_truth_draws_the_same_ones_for_the_customers_sent_to(shop):
    run, responses = shop
    by_decision = {e.decision_id: e for e in run.exposures}
    realised = [o for orders in run.orders.values() for o in orders if o.response_to]
    for order in realised:
        drawn = responses.respond(by_decision[order.response_to]).order
        assert drawn is not None and (drawn["at"], drawn["Detail"]["order_id"]) == (order.at, order.order_id)


def test_given_no_campaign_works_then_no_message_adds_an_order_and_the_truth_is_zero():
    campaigns, policy = experiment.shipped(holdout_percent=50)
    population = simulate(customers=150, days=4, seed=5)
    nothing = ResponseModel({}, seed=5)
    run = experiment.Shop(population, campaigns, policy, nothing, experiment._models()).run()
    assert run.exposures and not [o for orders in run.orders.values() for o in orders if o.response_to]
    truth = run.truth(nothing)
    assert truth and all(t.conversion == 0 and t.revenue_per_recipient == 0 for t in truth.values())


def test_given_repeated_shops_then_the_reported_95_percent_interval_covers_the_true_effect_in_90_percent_of_them():
    """Ten shops of 800 shoppers, each with a fresh population and holdout salt, half of every campaign held out.

    The requirement (issue 7) is the first assertion, and it is a weak one at this size: the confidence sequence
    spans about 3.3 standard errors either side, wide enough to cover "no effect" too. So the fixed-n interval
    (1.96 standard errors, read once) must cover in 85% of the cells as well, and that check has teeth: against
    effects three times the true ones it fails.
    """
    result = experiment.coverage_on_simulator(runs=10, customers=800, seed=300, workers=1)
    cells = result["cells"]
    assert result["cells_reported"] >= 20 and {c.campaign for c in cells} >= {"cart-abandonment"}
    assert result["coverage"] >= 0.90
    assert result["coverage_fixed_n"] >= 0.85
    tripled = sum(abs(c.estimate - 3 * c.truth) <= experiment.Z95 * c.se for c in cells) / len(cells)
    assert tripled < 0.85


def test_one_simulated_shop_is_reported_like_a_deployed_table(tmp_path):
    truth = experiment.report_of_one_shop(tmp_path / "r.html", customers=300, days=3, seed=3)
    page = (tmp_path / "r.html").read_text()
    assert 'data-campaign="cart-abandonment"' in page and "a simulated shop (300 shoppers" in page
    assert truth["cart-abandonment"]["recipients"] > 0
