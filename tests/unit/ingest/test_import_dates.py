"""``nextbest import``: a customers file's ``date.<name>`` columns are the customer's dates, and an imported birthday
is armed for its next occurrence after the import (not dropped as history already due)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from nextbest.core.events import CustomerIdentified
from nextbest.core.profiles import TriggerDelays
from nextbest.ingest.history import History, chunks, load, read
from nextbest.memory import MemoryStore

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)
BIRTHDAY = "date:birthday:yearly+0d@09:00"
DELAYS = TriggerDelays({BIRTHDAY: timedelta(0)}, time_zone="America/New_York")


def test_date_columns_become_the_customers_dates_and_a_bad_one_is_a_rejected_row():
    history = History()
    rows = [
        (2, {"customer_id": "cus_1", "time_zone": "Asia/Tokyo", "signed_up_at": "2020-01-05T10:00:00Z",
             "date.birthday": "1990-03-02", "date.renewal": ""}),
        (3, {"customer_id": "cus_2", "date.birthday": "02/03/1990"}),
    ]  # fmt: skip
    read("customers", "customers.csv", rows, NOW, history)
    [(kind, event)] = history.events["c:cus_1"]
    assert kind == "customer.identified" and isinstance(event, CustomerIdentified)
    assert event.dates == {"birthday": date(1990, 3, 2)}  # an empty cell is no date
    [rejected] = history.rejected
    assert (rejected.file, rejected.row) == ("customers.csv", 3) and "dates" in rejected.reason

    store = MemoryStore()
    for chunk in chunks(history, 10):
        load(store, chunk, NOW, DELAYS)
    profile = store.profile("c:cus_1")
    assert profile is not None and profile.dates == {"birthday": date(1990, 3, 2)}
    assert profile.triggers[BIRTHDAY] == datetime(2027, 3, 2, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
