"""HTTP adapter: fetch one web page safely (SSRF guard on every connection), politely
(robots.txt, host rate and concurrency, Retry-After) and within limits (time, redirects,
size on the wire and decoded, content type), retrying transient failures with back-off.

Every failure becomes a FetchError with a stable code and a message a user can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import functools
import os
import socket
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from seoblog_telemetry import span

from .addresses import AddressPolicy
from .decoding import PRESCAN_BYTES, decode_html
from .errors import FetchError
from .metrics import CrawlerMetrics
from .politeness import ROBOTS_MISSING, ROBOTS_OK, ROBOTS_UNREACHABLE, Politeness
from .transport import (
    AddressGuard,
    BadHostname,
    BlockedAddress,
    Resolver,
    check_hostname,
    guarded_client,
    system_resolver,
)

__all__ = ["DEFAULT_LIMITS", "FetchError", "FetchLimits", "FetchedPage", "Fetcher", "Validators"]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
# Only encodings we can inflate with a bound on the output (gzip bombs).
_ACCEPT_ENCODING = "gzip, deflate"
# RFC 9309 asks crawlers to parse at least the first 500 KiB of a robots.txt.
_ROBOTS_MAX_BYTES = 500 * 1024
_RETRIED_CODES = frozenset({"http_5xx", "timeout", "connect_failed", "rate_limited"})


@dataclass(frozen=True)
class FetchLimits:
    timeout_s: float = 15.0  # one attempt: every redirect hop and the whole body
    max_redirects: int = 5
    max_bytes: int = 5_000_000  # as sent (compressed)
    max_decoded_bytes: int = 20_000_000  # after Content-Encoding is undone
    allowed_content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml")
    user_agent: str = "seoblog-crawler/0.1 (+https://github.com/seoblog)"
    attempts: int = 3  # tries of one fetch for timeouts, connection errors, 5xx and 429
    backoff_s: float = 0.5  # exponential back-off with full jitter, from this
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 30.0  # a longer Retry-After is left to the bus's redelivery


DEFAULT_LIMITS = FetchLimits()


@dataclass(frozen=True)
class Validators:
    """What a stored copy of the page was served with, for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        found = {"if-none-match": self.etag, "if-modified-since": self.last_modified}
        return {k: v for k, v in found.items() if v}


@dataclass(frozen=True)
class FetchedPage:
    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes  # as sent, Content-Encoding undone; `html` is it decoded
    charset: str | None  # the HTTP charset, if any (decode_html reads it)
    headers: dict[str, str]
    elapsed_ms: float
    not_modified: bool = False  # 304: the caller's stored copy is still current
    wire_bytes: int = 0
    attempts: int = 1

    @functools.cached_property
    def html(self) -> str:
        """The page decoded as browsers do. The crawler leaves this to its extraction
        process (decode_html there), off the event loop and with bytes to send it, not text."""
        return decode_html(self.body, self.charset)


class Fetcher:
    """Fetches pages with redirects followed by hand, so every hop passes robots.txt and the
    host's pace, while the transport checks every address it connects to."""

    def __init__(
        self,
        limits: FetchLimits = DEFAULT_LIMITS,
        *,
        policy: AddressPolicy | None = None,
        resolver: Resolver = system_resolver,
        politeness: Politeness | None = None,
        metrics: CrawlerMetrics | None = None,
        per_host_connections: int = 8,
    ) -> None:
        self._limits = limits
        self._politeness = politeness
        self._metrics = metrics or (politeness.metrics if politeness else CrawlerMetrics())
        guard = AddressGuard(policy or AddressPolicy(), resolver)
        # The attempt's budget (asyncio.timeout in _follow) is the one timeout that counts;
        # httpx's per-operation bound is the same, so it never fires sooner.
        self._client = guarded_client(
            guard, per_origin_connections=per_host_connections, timeout_s=limits.timeout_s
        )
        self._headers = {
            "user-agent": limits.user_agent,
            "accept": _ACCEPT,
            "accept-encoding": _ACCEPT_ENCODING,
        }

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, validators: Validators | None = None) -> FetchedPage:
        """GET `url` and return its HTML (or, with `validators`, possibly a 304), or raise
        FetchError. Transient failures are retried here with back-off and jitter."""
        started = time.perf_counter()
        limits = self._limits
        backoff = wait_random_exponential(multiplier=limits.backoff_s, max=limits.backoff_max_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, FetchError) and exc.retry_after_s is not None:
                return exc.retry_after_s
            return float(backoff(state))

        def should_retry(exc: BaseException) -> bool:
            return (
                isinstance(exc, FetchError)
                and exc.code in _RETRIED_CODES
                and (exc.retry_after_s or 0) <= limits.max_retry_after_s
            )

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, FetchError):
                self._metrics.retries.labels(exc.code).inc()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(limits.attempts, 1)),
            wait=wait,
            retry=retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        where = {
            "http.request.method": "GET",
            "url.full": _traced(url),
            "server.address": _host(url),
        }
        with span("fetch", where) as current:
            async for attempt in retrying:
                with attempt:
                    tries = attempt.retry_state.attempt_number
                    current.set_attribute("seoblog.fetch.attempts", tries)
                    page = await self._follow(url, validators, started)
                    current.set_attributes(
                        {
                            "http.response.status_code": page.status,
                            "http.response.body.size": page.wire_bytes,
                            "seoblog.fetch.decoded_bytes": len(page.body),
                        }
                    )
                    return _with_attempts(page, tries)
        raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

    async def _follow(self, url: str, validators: Validators | None, started: float) -> FetchedPage:
        target = _web_url(url, url)
        # One budget for all hops and the whole body: httpx's own timeouts are per operation,
        # so a server dripping bytes could otherwise hold us forever. Waiting for a host's
        # turn (politeness) is not network time and does not count.
        budget = self._limits.timeout_s
        headers = self._headers | (validators.headers() if validators else {})
        for redirects in range(self._limits.max_redirects + 1):
            async with self._turn(target):
                hop_started = time.monotonic()
                try:
                    async with asyncio.timeout(budget):
                        outcome = await self._hop(url, target, headers, started)
                except TimeoutError:
                    raise _timeout_error(url, self._limits) from None
                budget -= time.monotonic() - hop_started
            if isinstance(outcome, FetchedPage):
                trace.get_current_span().set_attribute("seoblog.fetch.redirects", redirects)
                return outcome
            target = outcome
        raise FetchError(
            "too_many_redirects",
            f"Gave up after {self._limits.max_redirects} redirects fetching {url}",
        )

    @contextlib.asynccontextmanager
    async def _turn(self, target: str) -> AsyncIterator[None]:
        if self._politeness is None:
            yield
            return
        with span("robots", {"url.full": _traced(target)}):
            crawl_delay = await self._politeness.check_robots(target, self._robots_txt)
        async with contextlib.AsyncExitStack() as held:
            with span("host wait", {"server.address": _host(target)}):  # the host's turn
                await held.enter_async_context(self._politeness.turn(target, crawl_delay))
            yield

    async def _hop(
        self, url: str, target: str, headers: dict[str, str], started: float
    ) -> FetchedPage | str:
        """One request: the page, or the next URL to go to."""
        try:
            async with self._client.stream(
                "GET", target, headers=headers, follow_redirects=False
            ) as response:
                self._metrics.pages_fetched.labels(f"{response.status_code // 100}xx").inc()
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    return _web_url(str(response.url.join(location)), url, redirected=True)
                conditional = "if-none-match" in headers or "if-modified-since" in headers
                return await self._read_page(url, response, started, conditional=conditional)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, url, target, self._limits) from exc

    async def _read_page(
        self, url: str, response: httpx.Response, started: float, *, conditional: bool = False
    ) -> FetchedPage:
        status = response.status_code
        if status == 304 and conditional:
            return FetchedPage(
                url=url,
                final_url=str(response.url),
                status=status,
                content_type="",
                body=b"",
                charset=None,
                headers=dict(response.headers.items()),
                elapsed_ms=(time.perf_counter() - started) * 1000,
                not_modified=True,
            )
        retry_after = _retry_after_s(response.headers.get("retry-after"))
        if retry_after is not None and status in (429, 503) and self._politeness is not None:
            await self._politeness.hold(str(response.url), retry_after)
        _check_status(status, response.reason_phrase, retry_after)
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type not in self._limits.allowed_content_types:
            raise FetchError("not_html", f"The page is {media_type}, not HTML", status=status)
        limits = self._limits
        too_large = FetchError(
            "too_large",
            f"The page is larger than the {_human_size(limits.max_bytes)} limit",
            status=status,
        )
        declared_length = response.headers.get("content-length", "")
        if declared_length.isdigit() and int(declared_length) > limits.max_bytes:
            raise too_large
        inflater = _Inflater(response.headers.get("content-encoding", ""), limits.max_decoded_bytes)
        chunks: list[bytes] = []
        wire = 0
        try:
            async for raw in response.aiter_raw():
                wire += len(raw)
                if wire > limits.max_bytes:
                    raise too_large
                chunks.append(inflater.feed(raw))
            chunks.append(inflater.flush())
        except _Overflow:
            raise FetchError(
                "too_large",
                "The page decompresses to more than the "
                f"{_human_size(limits.max_decoded_bytes)} limit",
                status=status,
            ) from None
        body = b"".join(chunks)
        self._metrics.bytes_fetched.labels("wire").inc(wire)
        self._metrics.bytes_fetched.labels("decoded").inc(len(body))
        if not media_type:
            if not _looks_like_html(body):
                raise FetchError(
                    "not_html",
                    "The page did not say what type of content it is and does not look like HTML",
                    status=status,
                )
            media_type = "text/html"
        return FetchedPage(
            url=url,
            final_url=str(response.url),
            status=status,
            content_type=media_type,
            body=body,
            charset=response.charset_encoding,
            headers=dict(response.headers.items()),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            wire_bytes=wire,
        )

    async def _robots_txt(self, origin: str) -> tuple[str, str]:
        """Fetch origin/robots.txt: (outcome, text) as RFC 9309 reads the answer."""
        url = f"{origin}/robots.txt"
        headers = self._headers | {"accept": "text/plain,*/*;q=0.5"}
        try:
            async with asyncio.timeout(self._limits.timeout_s):
                async with self._client.stream(
                    "GET", url, headers=headers, follow_redirects=True
                ) as response:
                    status = response.status_code
                    if 200 <= status < 300:
                        return ROBOTS_OK, await _read_robots(response)
                    if 400 <= status < 500 and status != 429:
                        return ROBOTS_MISSING, ""
                    return ROBOTS_UNREACHABLE, ""
        except TimeoutError:
            return ROBOTS_UNREACHABLE, ""
        except httpx.TooManyRedirects:
            return ROBOTS_MISSING, ""  # RFC 9309 2.3.1.2: may be treated as unavailable (4xx)
        except httpx.HTTPError as exc:
            error = _transport_error(exc, url, url, self._limits)
            if error.code in ("blocked_address", "dns_failure", "bad_url"):
                raise error from exc  # the page itself cannot be had either: say why
            return ROBOTS_UNREACHABLE, ""


class _Overflow(Exception):
    pass


class _Inflater:
    """Undo Content-Encoding with a bound on the output, so a small gzip bomb cannot grow into
    gigabytes in memory: each call inflates at most what the limit still allows."""

    def __init__(self, encoding: str, limit: int) -> None:
        name = encoding.strip().lower()
        self.limit = limit
        self.size = 0
        self._raw_deflate_tried = False
        if name in ("", "identity"):
            self._z: zlib._Decompress | None = None
        elif name in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif name == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchError("bad_response", f"The page was sent with unsupported {name} encoding")
        self._deflate = name == "deflate"

    def feed(self, data: bytes) -> bytes:
        if self._z is None:
            return self._count(data)
        out = bytearray()
        try:
            while data:
                out += self._z.decompress(data, self.limit - self.size - len(out) + 1)
                if self.size + len(out) > self.limit:
                    raise _Overflow
                data = self._z.unconsumed_tail
        except zlib.error:
            if self._deflate and not self._raw_deflate_tried and self.size == 0 and not out:
                # Some servers send raw deflate without the zlib header (as httpx allows).
                self._raw_deflate_tried = True
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.feed(data)
            raise FetchError("bad_response", "The page's compressed body is corrupt") from None
        return self._count(bytes(out))

    def flush(self) -> bytes:
        return self._count(self._z.flush()) if self._z is not None else b""

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise _Overflow
        return data


async def _read_robots(response: httpx.Response) -> str:
    """The first 500 KiB of a robots.txt (the rest is ignored, as RFC 9309 allows)."""
    inflater = _Inflater(response.headers.get("content-encoding", ""), _ROBOTS_MAX_BYTES)
    chunks: list[bytes] = []
    try:
        async for raw in response.aiter_raw():
            chunks.append(inflater.feed(raw))
    except (_Overflow, FetchError):
        pass
    body = b"".join(chunks)[:_ROBOTS_MAX_BYTES]
    return body.decode("utf-8", errors="replace")


def _host(url: str) -> str | None:
    return urlsplit(url).hostname


def _traced(url: str) -> str:
    """`url` for a span: credentials in it redacted, as the URL semantic conventions ask."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"REDACTED:REDACTED@{host}").geturl()


def _with_attempts(page: FetchedPage, attempts: int) -> FetchedPage:
    return page if attempts == 1 else dataclasses.replace(page, attempts=attempts)


def _web_url(candidate: str, requested: str, *, redirected: bool = False) -> str:
    """`candidate` if it is an http(s) URL with a host, else a bad_url FetchError."""
    what = f"The page redirected to {candidate!r}, which" if redirected else f"{candidate!r}"
    try:
        parsed = httpx.URL(candidate)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise FetchError("bad_url", f"{what} is not a valid web address") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(
            "bad_url", f"{what} is not a web address (it must start with http:// or https://)"
        )
    if not parsed.host:
        raise FetchError("bad_url", f"{what} has no host name")
    try:
        check_hostname(parsed.host)
    except BadHostname as exc:
        raise FetchError("bad_url", f"{what} cannot be fetched: {exc}") from None
    return str(parsed)


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _check_status(status: int, reason: str, retry_after: float | None = None) -> None:
    if 200 <= status < 300:
        return
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = reason
    message = f"The page returned HTTP {status} {phrase}".rstrip()
    if retry_after is not None:
        message += f" (retry after {retry_after:.0f} s)"
    if status in (404, 410):
        raise FetchError("not_found", message, status=status)
    if status == 429:
        raise FetchError(
            "rate_limited", message, retryable=True, status=status, retry_after_s=retry_after
        )
    if 400 <= status < 500:
        raise FetchError("http_4xx", message, status=status)
    if 500 <= status < 600:
        raise FetchError(
            "http_5xx", message, retryable=True, status=status, retry_after_s=retry_after
        )
    raise FetchError("bad_response", message, status=status)


def _transport_error(
    exc: httpx.HTTPError, url: str, target: str, limits: FetchLimits
) -> FetchError:
    host = httpx.URL(target).host
    invalid = next((c for c in _causes(exc) if isinstance(c, BadHostname)), None)
    if invalid is not None:  # a name no resolver takes (a label over 63 characters)
        return FetchError("bad_url", f"Cannot fetch {target}: {invalid}")
    blocked = next((c for c in _causes(exc) if isinstance(c, BlockedAddress)), None)
    if blocked is not None:
        return FetchError(
            "blocked_address",
            f"Refused to fetch {target}: {blocked} (only public internet addresses are crawled)",
        )
    if isinstance(exc, httpx.TimeoutException):
        return _timeout_error(url, limits)
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(cause, socket.gaierror) for cause in _causes(exc)):
            return FetchError(
                "dns_failure", f"The address {host} could not be found (DNS lookup failed)"
            )
        return FetchError(
            "connect_failed", f"Could not connect to {host}: {_reason(exc)}", retryable=True
        )
    if isinstance(exc, httpx.DecodingError):
        return FetchError("bad_response", f"{host} sent a body that could not be decoded")
    if isinstance(exc, httpx.TransportError):
        return FetchError(
            "connect_failed", f"The connection to {host} failed: {_reason(exc)}", retryable=True
        )
    return FetchError("bad_response", f"Fetching {url} failed: {exc}")


def _timeout_error(url: str, limits: FetchLimits) -> FetchError:
    return FetchError(
        "timeout", f"Timed out after {limits.timeout_s:g} s fetching {url}", retryable=True
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> str:
    """The most specific readable reason in the chain, such as 'Connection refused'."""
    for cause in reversed(list(_causes(exc))):
        if isinstance(cause, OSError) and isinstance(cause.errno, int):
            return os.strerror(cause.errno)
    return str(exc) or type(exc).__name__


def _looks_like_html(body: bytes) -> bool:
    start = body[:PRESCAN_BYTES].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<html" in start


def _human_size(n_bytes: int) -> str:
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:g} MB"
    if n_bytes >= 1_000:
        return f"{n_bytes / 1_000:g} kB"
    return f"{n_bytes} bytes"
