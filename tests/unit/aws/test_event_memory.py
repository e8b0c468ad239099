"""What a profile item remembers of the events applied to it (``nextbest.aws.store.table.EventMemory``)."""

from datetime import UTC, datetime, timedelta

from nextbest.aws.store.table import APPLIED, REMEMBERED_EVENTS, EventMemory, profile_item, profile_of
from nextbest.core.profiles import Profile

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


def stored(memory: EventMemory) -> dict:
    return profile_item(Profile(key="c:1"), memory)


def remember(memory: EventMemory, events: list[str], at: datetime) -> EventMemory:
    memory, markers = memory.remembering(events, at)
    assert markers == []
    return memory


def test_an_event_is_remembered_for_a_week_and_then_forgotten():
    memory = remember(EventMemory(), ["e1"], NOW)
    assert "e1" in memory and "e2" not in memory
    assert "e1" in remember(memory, ["e2"], NOW + timedelta(days=6, hours=23))
    assert "e1" not in remember(memory, ["e2"], NOW + timedelta(days=7, seconds=1))


def test_beyond_256_events_in_a_week_a_profile_records_markers_for_a_week_and_forgets_nothing_early():
    memory = EventMemory()
    for n in range(REMEMBERED_EVENTS):
        memory = remember(memory, [f"e{n}"], NOW + timedelta(seconds=n))
    assert len(stored(memory)[APPLIED]["B"]) == 12 * REMEMBERED_EVENTS  # 3 KB at most
    later = NOW + timedelta(hours=1)
    full, markers = memory.remembering(["e-new"], later)
    assert markers == ["e-new"] and "e-new" not in full and all(f"e{n}" in full for n in range(REMEMBERED_EVENTS))
    assert full.markers_until == int((later + timedelta(days=7)).timestamp())
    # a day on, most of the memory is still young: markers go on for the week, even for events that would fit
    _, markers = EventMemory(dict(list(full.entries.items())[:10]), full.markers_until).remembering(["x"], later)
    assert markers == ["x"]
    # a week after the last marker, the profile is back to remembering in its item
    quiet = later + timedelta(days=7, seconds=1)
    back, markers = full.remembering(["y"], quiet)
    assert markers == [] and "y" in back and back.markers_until == 0


def test_a_merge_remembers_what_every_merged_profile_remembered():
    a, b = stored(remember(EventMemory(), ["a1"], NOW)), stored(remember(EventMemory(), ["b1", "b2"], NOW))
    joined = EventMemory.of([a, b, None])
    assert all(e in joined for e in ("a1", "b1", "b2")) and "c1" not in joined


def test_the_stored_profile_reads_back_the_same_and_holds_no_memory_when_none_is_given():
    profile = Profile(key="c:1", identifiers=["c:1"], email="ann@example.org", version=3)
    item = profile_item(profile)
    assert APPLIED not in item and profile_of(item) == profile


def test_every_attribute_a_profile_item_may_lack_is_one_an_update_of_the_profile_removes():
    """Decide saves a profile with an Update (keeping ``applied``): an attribute the new state lacks must be
    REMOVEd, or a stale one (an index key) would stay."""
    from nextbest.aws.store.table import OPTIONAL_ATTRIBUTES
    from nextbest.core.profiles import Order

    buyer = Profile(key="c:1", identifiers=["c:1"], order_count=1, last_event_at=NOW,
                    orders=[Order(order_id="o1", at=NOW, total=10)], triggers={"cart_abandoned": NOW})  # fmt: skip
    cookie = Profile(key="a:1", identifiers=["a:1"], last_event_at=NOW, triggers={"browse_abandoned": NOW})
    always = {"pk", "sk", "version", "doc"}
    for profile in (buyer, cookie, Profile(key="c:2")):
        assert set(profile_item(profile)) - always <= set(OPTIONAL_ATTRIBUTES)
