"""Reads that DynamoDB may answer in part or in pages: the store asks again for what it did not get."""

from nextbest.aws.store import Store


class PagedDynamo:
    """Answers a campaign's Query in two pages, as DynamoDB does past 1 MB: two shards' tally items, a counter
    item written before the tally, and a cap's item (what was leased, not a statistic)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def query(self, **kwargs: object) -> dict:
        self.calls.append(kwargs)
        shard = {"pk": {"S": "s:cart"}, "seq": {"S": "9"}, "created_at": {"N": "1"}}
        first = [
            {
                **shard,
                "sk": {"S": "TALLY#shard-1"},
                "VARIANT#a|sends": {"N": "10"},
                "VARIANT#a|conversions": {"N": "1"},
            },
            {"pk": {"S": "s:cart"}, "sk": {"S": "HOUR#2026-11-02T09"}, "n": {"N": "64"}},
        ]
        second = [
            {**shard, "sk": {"S": "TALLY#shard-2"}, "VARIANT#a|sends": {"N": "5"}, "VARIANT#b|sends": {"N": "7"}},
            {"pk": {"S": "s:cart"}, "sk": {"S": "VARIANT#b"}, "sends": {"N": "100"}, "conversions": {"N": "3"}},
        ]
        if "ExclusiveStartKey" not in kwargs:
            return {"Items": first, "LastEvaluatedKey": {"pk": {"S": "s:cart"}, "sk": {"S": "HOUR#2026-11-02T09"}}}
        return {"Items": second}


def test_arm_counts_sum_every_shards_tally_and_the_older_counters_over_every_page():
    client = PagedDynamo()
    counts = Store("t", client=client).arm_counts("cart", ["a", "b", "c"])
    assert counts == {"a": (15, 1), "b": (107, 3), "c": (0, 0)} and len(client.calls) == 2


def test_a_profile_of_a_cookie_alone_expires_13_months_after_its_last_event_and_no_other_profile_does():
    from datetime import UTC, datetime, timedelta

    from nextbest.aws.store.table import profile_item
    from nextbest.core.profiles import Profile

    seen = datetime(2026, 11, 2, 9, tzinfo=UTC)
    cookie = Profile(key="a:ck", identifiers=["a:ck"], last_event_at=seen)
    assert int(profile_item(cookie)["expires_at"]["N"]) == int((seen + timedelta(days=395)).timestamp())
    linked = cookie.model_copy(update={"identifiers": ["a:ck", "a:ck2"]})  # a redirect leads to it: kept
    customer = Profile(key="c:1", identifiers=["c:1"], last_event_at=seen)
    assert "expires_at" not in profile_item(linked) and "expires_at" not in profile_item(customer)


def test_a_document_reads_the_same_from_boto3_bytes_and_from_a_lambda_stream_events_base64():
    """Lambda hands the tally stream records as JSON, where a binary attribute is base64 text, not bytes."""
    import base64
    import zlib

    from nextbest.aws.store.table import document

    packed = zlib.compress(b'{"status": "sent"}')
    assert document({"doc": {"B": packed}}) == {"status": "sent"}
    assert document({"doc": {"B": base64.b64encode(packed).decode()}}) == {"status": "sent"}
    assert document({"doc": {"S": '{"status": "sent"}'}}) == {"status": "sent"}


def test_documents_are_compressed_with_the_preset_dictionary_smaller_and_read_back_with_the_older_plain_ones():
    import zlib

    from nextbest.aws.store.table import DICTIONARY, compress, decompress, profile_item, profile_of
    from nextbest.core.profiles import Profile

    profile = Profile(key="c:1", identifiers=["c:1", "e:ann@example.org"], email="ann@example.org", first_name="Ann")
    raw = profile.model_dump_json(exclude_defaults=True).encode()
    packed = compress(raw)
    assert packed[1] & 0x20 and int.from_bytes(packed[2:6], "big") == zlib.adler32(DICTIONARY)  # names its dictionary
    assert len(packed) < len(zlib.compress(raw, 9))
    assert decompress(packed) == raw and decompress(zlib.compress(raw)) == raw
    assert profile_of(profile_item(profile)) == profile


def test_the_dictionary_is_never_edited_in_place():
    """Stored documents name the dictionary by its checksum: an edit would make every one of them unreadable."""
    import zlib

    from nextbest.aws.store.table import DICTIONARIES, DICTIONARY

    assert zlib.adler32(DICTIONARY) == 2419946415 and DICTIONARIES[2419946415] == DICTIONARY
