"""DynamoDB's billing rules as the emulation's metering applies them (``infra.local.emulator.billing``): item sizes
by "DynamoDB item sizes and formats", units by "DynamoDB read and write operations", index writes by the GSI page."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.local.emulator.billing import (
    Index,
    index_write_units,
    item_size,
    item_write,
    number_size,
    read_units,
    value_size,
    write_units,
)


def test_a_string_attribute_is_its_name_and_its_utf8_bytes():
    assert item_size({"pk": {"S": "c:cus_42"}}) == 2 + 8
    assert item_size({"név": {"S": "été"}}) == 4 + 5  # UTF-8 bytes, not characters, for the name and the value


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 1), ("7", 2), ("12", 2), ("123", 3), ("1000", 2), ("0.001", 2), ("123.45", 4), ("-12", 2), ("1E+3", 2)],
)
def test_a_number_is_one_byte_per_two_significant_digits_plus_one(number, size):
    assert number_size(number) == size


def test_booleans_nulls_and_binaries():
    assert value_size({"BOOL": True}) == 1
    assert value_size({"NULL": True}) == 1
    assert value_size({"B": b"\x00\x01\x02"}) == 3  # raw bytes, as botocore takes them
    assert value_size({"B": "AAEC"}) == 3  # base64 on the wire and in moto: the raw length counts


def test_a_list_or_map_costs_three_bytes_and_one_per_element_with_the_names_inside():
    assert value_size({"L": []}) == 3
    assert value_size({"M": {}}) == 3
    assert value_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (2 + 1) + (2 + 1)
    assert value_size({"M": {"k": {"S": "ab"}}}) == 3 + (1 + 2 + 1)
    assert item_size({"doc": {"M": {"a": {"L": [{"BOOL": False}]}}}}) == 3 + 3 + (1 + (3 + (1 + 1)) + 1)


def test_sets_are_the_sum_of_their_elements():
    assert value_size({"SS": ["ab", "c"]}) == 3
    assert value_size({"NS": ["12", "345"]}) == 2 + 3


def test_no_item_has_no_size():
    assert item_size(None) == 0
    assert item_size({}) == 0


def test_writes_are_one_unit_per_kilobyte_rounded_up_and_at_least_one():
    assert [write_units(n) for n in (0, 1, 1024, 1025, 2048, 2049)] == [1, 1, 1, 2, 2, 3]


def test_reads_are_one_unit_per_four_kilobytes_half_when_eventually_consistent():
    assert read_units(0, consistent=True) == 1  # an item that does not exist still costs
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(100, consistent=False) == 0.5


def blob(size: int) -> dict:
    """An item of exactly ``size`` bytes."""
    return {"pk": {"S": "p"}, "sk": {"S": "s"}, "d": {"S": "x" * (size - 7)}}


def test_a_write_is_billed_on_the_larger_of_the_item_before_and_after():
    assert item_size(blob(3000)) == 3000
    assert item_write(blob(3000), blob(100), applied=True).units == 3  # a shrinking update
    assert item_write(blob(100), blob(3000), applied=True).units == 3
    assert item_write(blob(3000), None, applied=True).units == 3  # a delete


def test_a_transaction_doubles_the_units_of_each_item_it_commits():
    assert item_write(None, blob(1500), applied=True, transactional=True).units == 4


def test_a_failed_condition_or_a_cancelled_transaction_is_billed_once_and_writes_no_index():
    index = Index("by_x", ("x",))
    new = {**blob(100), "x": {"S": "1"}}
    failed = item_write(blob(2500), new, applied=False, transactional=True, indexes=(index,), table_keys=("pk", "sk"))
    assert (failed.units, failed.index_units, failed.applied) == (3, 0, False)


KEYS = ("pk", "sk")
SWEEP = Index("by_sweep", ("sweep", "pk"))


def with_sweep(shard: str | None, size: int = 100) -> dict:
    item = blob(size)
    return item if shard is None else {**item, "sweep": {"S": shard}}


def test_an_index_is_written_when_an_item_enters_or_leaves_it_and_twice_when_its_key_changes():
    assert index_write_units(None, with_sweep("1"), (SWEEP,), KEYS) == 1  # enters
    assert index_write_units(with_sweep("1"), None, (SWEEP,), KEYS) == 1  # deleted
    assert index_write_units(with_sweep("1"), with_sweep(None), (SWEEP,), KEYS) == 1  # leaves (sparse)
    assert index_write_units(with_sweep("1"), with_sweep("2"), (SWEEP,), KEYS) == 2  # moves: delete + put


def test_a_keys_only_index_is_not_written_when_only_unprojected_attributes_change():
    assert index_write_units(with_sweep("1", 100), with_sweep("1", 3000), (SWEEP,), KEYS) == 0
    assert index_write_units(blob(100), blob(900), (SWEEP,), KEYS) == 0  # never in the sparse index


def test_an_index_that_projects_an_attribute_is_written_when_it_changes():
    everything = Index("by_all", ("sweep",), projected=None)
    included = Index("by_inc", ("sweep",), projected=("d",))
    assert index_write_units(with_sweep("1", 100), with_sweep("1", 200), (everything, included), KEYS) == 2


def test_an_index_entry_is_billed_by_its_own_size():
    projected = Index("by_all", ("sweep",), projected=None)
    assert index_write_units(None, with_sweep("1", 2000), (projected,), KEYS) == 2
    assert index_write_units(None, with_sweep("1", 2000), (SWEEP,), KEYS) == 1  # keys only: a few bytes


@given(st.text(max_size=300), st.text(max_size=30))
def test_a_string_item_grows_byte_for_byte(value, name):
    assert item_size({name: {"S": value}}) == len(name.encode()) + len(value.encode())


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=5))
def test_units_never_decrease_as_an_item_grows(sizes):
    sizes.sort()
    assert [write_units(n) for n in sizes] == sorted(write_units(n) for n in sizes)
    assert all(read_units(n, True) >= read_units(n, False) for n in sizes)
