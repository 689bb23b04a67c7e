"""Why a page could not be had: a stable code for machines, a message for people."""

from __future__ import annotations

from typing import Any

# Codes a caller may see. Retryable ones may succeed later; the rest fail the job at once.
RETRYABLE_CODES = frozenset(
    {"http_5xx", "timeout", "connect_failed", "rate_limited", "robots_unavailable"}
)


class FetchError(Exception):
    """A page could not be fetched. `code` is stable; `message` is for people.

    Codes: not_found, http_4xx, http_5xx, rate_limited (429, or a host's own limits would
    make us wait too long), bad_response, dns_failure, connect_failed, timeout, not_html,
    too_large, too_many_redirects, bad_url, blocked_address (SSRF rules), robots_denied,
    robots_unavailable (robots.txt answered 5xx or not at all: RFC 9309 says stay away).
    `retry_after_s` is the server's Retry-After, when it sent one.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_fetch_error,
            (self.code, self.message, self.retryable, self.status, self.retry_after_s),
        )

    def __repr__(self) -> str:
        return f"FetchError(code={self.code!r}, message={self.message!r}, status={self.status!r})"


def _rebuild_fetch_error(
    code: str, message: str, retryable: bool, status: int | None, retry_after_s: float | None
) -> FetchError:
    return FetchError(
        code, message, retryable=retryable, status=status, retry_after_s=retry_after_s
    )
