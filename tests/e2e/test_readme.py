"""The README's event examples, as written: valid JSON, valid events, and the first-message recipe delivers."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from nextbest.core.events import DETAIL_TYPES

from infra.local.emulator import recipients
from tests.builders import table_store
from tests.conftest import T0
from tests.e2e.test_pipeline import dead_letters

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def put_events_examples() -> list[list[dict]]:
    """The `--entries '…'` of each of the README's `aws events put-events` examples, as the shell hands it to the
    CLI: a cart, a wishlist, the catalog's product and a custom event."""
    return [json.loads(e) for e in re.findall(r"aws events put-events --entries '([^']*)'", README)]


def put_events_example() -> list[dict]:
    """The first example: a customer's cart."""
    return put_events_examples()[0]


def first_message(bus: str, now: str) -> list[dict]:
    """The file the first-message recipe writes (its heredoc, with the shell's $BUS and $NOW)."""
    [heredoc] = re.findall(r"cat > first-message\.json <<EOF\n(.*?)\nEOF\n", README, re.S)
    assert "file://first-message.json" in README
    return json.loads(heredoc.replace("$BUS", bus).replace("$NOW", now))


@pytest.mark.parametrize("entries", [*put_events_examples(), first_message("nextbest", "2026-11-02T09:00:00Z")])
def test_each_readme_event_is_valid_json_and_a_valid_event(entries):
    for entry in entries:
        model = DETAIL_TYPES[entry["DetailType"]]
        model.model_validate_json(entry["Detail"])  # raises, naming the field, if the README's event is invalid


def test_the_readme_examples_name_a_cart_a_wishlist_a_product_and_a_custom_event():
    assert [[e["DetailType"] for e in entries] for entries in put_events_examples()] == [
        ["cart.updated"],
        ["wishlist.updated"],
        ["product.updated"],
        ["custom.event"],
    ]


def test_the_readme_put_events_example_is_ingested_by_the_emulated_bus(emulation):
    entries = [e | {"EventBusName": emulation.output("BusName")} for e in put_events_example()]
    assert emulation.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0
    emulation.drain()
    assert not any(dead_letters(emulation).values())
    profile = table_store(emulation).resolve(["c:cus_1"])["c:cus_1"]
    assert profile is not None and profile.cart is not None
    assert [item.name for item in profile.cart.items] == ["Serum"]


def test_the_first_message_recipe_sends_the_cart_reminder_an_hour_later(emulation):
    # Given the recipe's three events, as the README writes them, put on the emulated stack's bus
    entries = first_message(emulation.output("BusName"), T0.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert emulation.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0
    emulation.drain()
    emulation.advance(T0 + timedelta(minutes=59))
    assert emulation.sent_emails() == []
    # When the cart campaign's hour has passed
    emulation.advance(T0 + timedelta(minutes=61))
    # Then the reminder went to the address the recipe names, with the cart's item
    [sent] = emulation.sent_emails()
    assert recipients(sent) == ["you@yourmail.com"]
    assert "Serum" in sent.raw_data and "Ann" in sent.raw_data
    assert not any(dead_letters(emulation).values())


def coupon_snippet(language: str) -> str:
    """The README's verification snippet for a checkout in ``language`` (python, js), as written."""
    section = README[README.index("### Coupons") : README.index("## Measuring uplift")]
    [snippet] = re.findall(rf"```{language}\n(.*?)```", section, re.S)
    return snippet


def coupon_cases():
    """Codes a checkout meets: genuine, typed sloppily, signed with the previous key, expired, forged, malformed;
    with what the reference implementation says of each."""
    from datetime import date

    from nextbest.core import coupons

    current, previous, today = b"current-key", b"previous-key", date(2026, 12, 2)
    fresh = coupons.signed(current, "CART", "cart-abandonment", "d-1", today + timedelta(days=30))
    rotated = coupons.signed(previous, "WIN2", "win-back", "d-2", today)
    expired = coupons.signed(current, "CART", "cart-abandonment", "d-3", today - timedelta(days=1))
    forged = fresh[:-1] + ("0" if fresh[-1] != "0" else "1")
    codes = [fresh, " " + fresh.lower().replace("0", "o").replace("1", "l") + " ", rotated, expired, forged,
             "WIN2-" + fresh.split("-")[1], "CART-123", "garbage", "-" + fresh.split("-")[1]]  # fmt: skip
    expected = [coupons.verify(code, [current, previous], today) for code in codes]
    assert [e is not None for e in expected] == [True, True, True, False, False, False, False, False, False]
    return codes, [current, previous], today, expected


def test_the_readme_python_coupon_check_agrees_with_nextbest():
    codes, keys, today, expected = coupon_cases()
    namespace: dict = {}
    exec(coupon_snippet("python"), namespace)  # the README's own code, as a checkout would paste it
    assert [namespace["verify_coupon"](code, keys, today) for code in codes] == expected


def test_the_readme_node_coupon_check_agrees_with_nextbest(tmp_path):
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    codes, keys, today, expected = coupon_cases()
    script = tmp_path / "verify.js"
    script.write_text(
        coupon_snippet("js")
        + f"\nconst today = new Date({json.dumps(today.isoformat() + 'T12:00:00Z')});\n"
        + f"console.log(JSON.stringify({json.dumps(codes)}.map((c) => "
        + f"verifyCoupon(c, {json.dumps([k.decode() for k in keys])}, today))));\n"
    )
    found = json.loads(subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout)
    assert found == [e.isoformat() if e else None for e in expected]
