"""The independent audit counts the violations it is shown, from what was sent and the simulator's truth alone."""

from datetime import UTC, datetime, timedelta

from nextbest.core.campaigns import Policy, QuietHours, Window
from nextbest_lab import audit
from nextbest_lab.audit import Sent
from nextbest_lab.simulator import Truth

POLICY = Policy(
    caps={"all": Window(day=2, week=4), "email": Window(day=1, week=3), "sms": Window(day=1, week=2)},
    quiet_hours=QuietHours(start_hour=21, end_hour=8, channels=["sms", "push"], default_time_zone="UTC"),
)
ANN, BOB = "success+cus_1@simulator.amazonses.com", "bounce+cus_2@simulator.amazonses.com"
PHONE = "+14155550101"
NOON = datetime(2026, 11, 3, 17, tzinfo=UTC)  # 12:00 in New York


def truth() -> Truth:
    found = Truth(
        owners={ANN: "cus_1", PHONE: "cus_1", BOB: "cus_2"},
        time_zones={"cus_1": "America/New_York", "cus_2": "America/New_York"},
    )
    for channel, address in (("email", ANN), ("sms", PHONE), ("email", BOB)):
        found.record(channel, address, NOON - timedelta(days=30), True)
    return found


def test_a_text_sent_at_night_in_the_shoppers_own_zone_is_a_quiet_hour_violation():
    # Given a text at 03:00 UTC, which is 22:00 the evening before in New York, and one at 13:00 UTC (08:00 there)
    night = Sent("sms", PHONE, "d-1", datetime(2026, 11, 3, 3, tzinfo=UTC))
    morning = Sent("sms", PHONE, "d-2", datetime(2026, 11, 3, 13, tzinfo=UTC))
    # And an e-mail at night, which the policy does not keep quiet
    mail = Sent("email", ANN, "d-3", datetime(2026, 11, 3, 3, tzinfo=UTC))
    # Then only the night text is counted
    assert audit.quiet_hour_violations([night, morning, mail], truth(), POLICY) == [night]
    assert audit.sends([night, morning, mail], truth(), POLICY)["quiet_hour_violations"] == 1


def test_messages_beyond_a_rolling_cap_are_counted_and_bounced_mail_did_not_reach_anyone():
    # Given two e-mails to one shopper 23 hours apart (e-mail cap: 1 a day), the second one 25 hours after the first
    first = Sent("email", ANN, "d-1", NOON)
    second = Sent("email", ANN, "d-2", NOON + timedelta(hours=23))
    third = Sent("email", ANN, "d-3", NOON + timedelta(hours=48))
    # And two e-mails to an address that bounces
    bounced = [Sent("email", BOB, f"d-{n}", NOON + timedelta(hours=n)) for n in (4, 5)]
    found = audit.cap_violations([first, second, third, *bounced], truth(), POLICY)
    # Then the second e-mail broke the daily e-mail cap; the third did not; nothing reached the bouncing address
    assert [(v.message, v.cap, v.counted) for v in found] == [(second, "email per day: 2 > 1", [first, second])]


def test_the_cap_over_all_channels_counts_texts_and_e_mails_together():
    sent = [
        Sent("email", ANN, "d-1", NOON),
        Sent("sms", PHONE, "d-2", NOON + timedelta(hours=1)),
        Sent("sms", PHONE, "d-2", NOON + timedelta(hours=26)),  # the same text twice: a duplicate
        Sent("email", ANN, "d-3", NOON + timedelta(hours=27)),
    ]
    assert audit.cap_violations(sent, truth(), POLICY) == []
    # One more e-mail: the second within 24 hours (e-mail: 1 a day), and then the last is the fifth in 7 days (all: 4)
    figures = audit.sends([*sent, Sent("email", ANN, "d-4", NOON + timedelta(hours=2))], truth(), POLICY)
    assert figures["cap_violations"] == 2
    assert figures["duplicate_sends"] == 1 and figures["optout_violations"] == 0
