"""The SQS batch helper's backoff for throttled records."""

from nextbest.aws.batch import backoff_seconds


def test_backoff_grows_exponentially_with_receives_is_capped_and_jittered():
    assert [backoff_seconds(n, lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [30, 60, 120, 240, 480, 900]
    assert [backoff_seconds(n, lambda: 0.0) for n in (1, 2, 9)] == [15, 30, 450]
