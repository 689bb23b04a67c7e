"""Retry-After as the crawler reads it (the guarded transport's own tests are in
libs/netguard/tests)."""

from crawler.fetch import _retry_after_s


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert _retry_after_s("120") == 120
    assert _retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now
    assert _retry_after_s("soon") is None
    assert _retry_after_s(None) is None
