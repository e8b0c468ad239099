"""Attribution: orders credited to the last message of each campaign in the window, holdout included."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from nextbest.core.attribution import WINDOW, attribute, episode_end
from nextbest.core.profiles import MessageLog, Order, Profile

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def message(decision: str, campaign: str, hours_before: float, held_out: bool = False, **more) -> MessageLog:
    return MessageLog(decision_id=decision, campaign_id=campaign, channel="email", variant="a", held_out=held_out,
                      at=T0 - timedelta(hours=hours_before), **more)  # fmt: skip


def with_order(profile: Profile, order_id: str, total: str, at: datetime = T0) -> Profile:
    return profile.model_copy(
        update={"orders": [*profile.orders, Order(order_id=order_id, at=at, total=Decimal(total))]}
    )


def adds(counters) -> dict[tuple[str, str], dict[str, Decimal]]:
    return {(c.pk, c.sk): dict([(c.attribute, c.by), *c.also]) for c in counters}


def test_an_order_is_credited_to_the_last_message_of_each_campaign_in_the_window():
    log = [message("d1", "cart", 30), message("d2", "cart", 2), message("d3", "winback", 5, held_out=True)]
    before = Profile(key="c:1", messages=[*log, message("d4", "old", 24 * 9)])
    after, counters = attribute(before, with_order(before, "o1", "40"))
    assert adds(counters) == {
        ("s:cart", "ARM#treatment"): {"conversions": 1, "revenue": 40, "revenue_sq": 1600},
        ("s:cart", "VARIANT#a"): {"conversions": 1},
        ("s:cart", "FUNNEL#a#email"): {"conversions": 1, "revenue": 40},
        ("s:winback", "ARM#holdout"): {"conversions": 1, "revenue": 40, "revenue_sq": 1600},
    }
    credited = {m.decision_id: m.revenue for m in after.messages}
    assert credited == {"d1": 0, "d2": 40, "d3": 40, "d4": 0}


def test_a_second_order_adds_revenue_but_not_a_second_conversion():
    before = Profile(key="c:1", messages=[message("d1", "cart", 2)])
    once, _ = attribute(before, with_order(before, "o1", "40"))
    twice, counters = attribute(once, with_order(once, "o2", "10", T0 + timedelta(hours=1)))
    assert adds(counters) == {
        ("s:cart", "ARM#treatment"): {"revenue": 10, "revenue_sq": 50**2 - 40**2},
        ("s:cart", "FUNNEL#a#email"): {"revenue": 10},
    }
    assert twice.messages[0].revenue == 50


def test_an_order_already_applied_or_outside_the_window_credits_nothing():
    before = with_order(Profile(key="c:1", messages=[message("d1", "cart", 2)]), "o1", "40")
    assert attribute(before, before)[1] == []
    late = Profile(key="c:1", messages=[message("d1", "cart", 24 * 8)])
    assert attribute(late, with_order(late, "o1", "40"))[1] == []


def test_the_global_control_is_counted_apart_from_the_campaign_holdout():
    log = [message("d1", "cart", 2, held_out=True, global_control=True), message("d2", "winback", 2, held_out=True)]
    before = Profile(key="c:1", messages=log)
    _, counters = attribute(before, with_order(before, "o1", "25"))
    assert set(adds(counters)) == {("s:cart", "ARM#global_control"), ("s:winback", "ARM#holdout")}


def test_a_first_message_and_its_follow_up_are_one_episode_credited_once_to_the_arm():
    first = message("d1", "cart", 80, credit_until=T0 + timedelta(days=2))
    follow_up = message("d2", "cart", 8, step=1)
    before = Profile(key="c:1", messages=[first, follow_up])
    after, counters = attribute(before, with_order(before, "o1", "40"))
    assert adds(counters) == {
        ("s:cart", "ARM#treatment"): {"conversions": 1, "revenue": 40, "revenue_sq": 1600},  # the episode
        ("s:cart", "FUNNEL#a#email"): {"conversions": 1, "revenue": 40},  # the last message
        ("s:cart", "VARIANT#a"): {"conversions": 1},
    }
    assert {m.decision_id: m.revenue for m in after.messages} == {"d1": 40, "d2": 40}


def test_an_episode_is_credited_until_its_window_after_the_last_possible_follow_up_whatever_was_sent():
    held = message("d1", "cart", 24 * 9, held_out=True, credit_until=T0 + timedelta(days=1))
    before = Profile(key="c:1", messages=[held])
    _, counters = attribute(before, with_order(before, "o1", "40"))
    assert adds(counters) == {("s:cart", "ARM#holdout"): {"conversions": 1, "revenue": 40, "revenue_sq": 1600}}


def test_a_follow_up_adds_no_recipient_and_the_episode_ends_after_its_span():
    from nextbest.core.campaigns import load_campaigns
    from nextbest.core.counters import decided
    from nextbest.core.decision import Decision

    cart = {c.id: c for c in load_campaigns(Path(__file__).resolve().parents[3] / "campaigns")}["cart-abandonment"]
    decision = Decision(decision_id="d", profile_key="c:1", trigger="t", trigger_due_at=T0, decided_at=T0,
                        action="send", campaign_id=cart.id, channel="email", variant="urgency", step=1)  # fmt: skip
    assert not [c for c in decided(decision) if c.sk.startswith("ARM#")]
    first = decision.model_copy(update={"step": 0})
    assert [c.sk for c in decided(first) if c.sk.startswith("ARM#")] == ["ARM#treatment"]
    assert episode_end(cart, T0) == T0 + timedelta(hours=cart.follow_up.after_hours) + WINDOW


def test_an_order_naming_its_message_credits_that_message_s_funnel_and_variant_and_leaves_the_arms_as_they_were():
    # Given a reminder (variant a, by e-mail) and a later follow-up of the same campaign (variant b)
    first = message("d1", "cart", 30)
    follow_up = message("d2", "cart", 2, step=1).model_copy(update={"variant": "b"})
    before = Profile(key="c:1", messages=[first, follow_up])
    # When the order comes back with the first message's decision id (nb from its link)
    order = Order(order_id="o1", at=T0, total=Decimal(40), decision_id="d1")
    after, counters = attribute(before, before.model_copy(update={"orders": [order]}))
    # Then the funnel and the bandit credit the message the customer came through, not the last one
    credited = adds(counters)
    assert credited[("s:cart", "FUNNEL#a#email")] == {"conversions": 1, "revenue": 40}
    assert credited[("s:cart", "VARIANT#a")] == {"conversions": 1}
    assert ("s:cart", "FUNNEL#b#email") not in credited and ("s:cart", "VARIANT#b") not in credited
    assert {m.decision_id: m.revenue for m in after.messages} == {"d1": 40, "d2": 0}
    # and the arms count the episode exactly as without the link (a held-out customer has no link to come back by)
    unnamed = attribute(before, with_order(before, "o1", "40"))[1]
    assert credited[("s:cart", "ARM#treatment")] == adds(unnamed)[("s:cart", "ARM#treatment")]
    # and a decision id the profile does not know changes nothing
    stranger = Order(order_id="o1", at=T0, total=Decimal(40), decision_id="someone-elses")
    assert adds(attribute(before, before.model_copy(update={"orders": [stranger]}))[1]) == adds(unnamed)
