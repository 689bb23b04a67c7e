"""HTTP adapter: fetch one web page within limits (time, redirects, size, content type).

Every failure becomes a FetchError with a stable code and a message a user can read.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

import httpx

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
# The HTML spec looks for <meta charset> in the first 1024 bytes; a little slack costs nothing.
_PRESCAN_BYTES = 2048
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Browsers read these labels as windows-1252 (WHATWG Encoding Standard); so do we.
_WINDOWS_1252_CODECS = frozenset({"iso8859-1", "ascii"})


@dataclass(frozen=True)
class FetchLimits:
    timeout_s: float = 15.0
    max_redirects: int = 5
    max_bytes: int = 5_000_000
    allowed_content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml")
    user_agent: str = "seoblog-crawler/0.1 (+https://github.com/seoblog)"


DEFAULT_LIMITS = FetchLimits()


@dataclass(frozen=True)
class FetchedPage:
    url: str
    final_url: str
    status: int
    content_type: str
    html: str
    headers: dict[str, str]
    elapsed_ms: float


class FetchError(Exception):
    """A page could not be fetched. `code` is stable; `message` is for people.

    Codes: not_found, http_4xx, http_5xx, bad_response, dns_failure, connect_failed,
    timeout, not_html, too_large, too_many_redirects, bad_url.
    """

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_fetch_error, (self.code, self.message, self.retryable, self.status))

    def __repr__(self) -> str:
        return f"FetchError(code={self.code!r}, message={self.message!r}, status={self.status!r})"


def _rebuild_fetch_error(
    code: str, message: str, retryable: bool, status: int | None
) -> FetchError:
    return FetchError(code, message, retryable=retryable, status=status)


class Fetcher:
    """Fetches pages with redirects followed by hand, so every hop passes our own checks.

    A client passed in stays the caller's to close; one made here is closed by `aclose`.
    """

    def __init__(
        self, client: httpx.AsyncClient | None = None, limits: FetchLimits = DEFAULT_LIMITS
    ) -> None:
        self._limits = limits
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._headers = {"user-agent": limits.user_agent, "accept": _ACCEPT}

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
        if self._owns_client:
            await self._client.aclose()

    async def fetch(self, url: str) -> FetchedPage:
        """GET `url` and return its HTML, or raise FetchError."""
        started = time.perf_counter()
        # One deadline for all hops and the whole body: httpx's own timeouts are per
        # operation, so a server dripping bytes could otherwise hold us forever.
        try:
            async with asyncio.timeout(self._limits.timeout_s):
                return await self._follow(url, started)
        except TimeoutError:
            raise _timeout_error(url, self._limits) from None

    async def _follow(self, url: str, started: float) -> FetchedPage:
        target = _web_url(url, url)
        for _ in range(self._limits.max_redirects + 1):
            try:
                async with self._client.stream(
                    "GET",
                    target,
                    headers=self._headers,
                    follow_redirects=False,
                    timeout=self._limits.timeout_s,
                ) as response:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        target = _web_url(str(response.url.join(location)), url, redirected=True)
                        continue
                    return await self._read_page(url, response, started)
            except httpx.HTTPError as exc:
                raise _transport_error(exc, url, target, self._limits) from exc
        raise FetchError(
            "too_many_redirects",
            f"Gave up after {self._limits.max_redirects} redirects fetching {url}",
        )

    async def _read_page(self, url: str, response: httpx.Response, started: float) -> FetchedPage:
        status = response.status_code
        _check_status(status, response.reason_phrase)
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type not in self._limits.allowed_content_types:
            raise FetchError("not_html", f"The page is {media_type}, not HTML", status=status)
        too_large = FetchError(
            "too_large",
            f"The page is larger than the {_human_size(self._limits.max_bytes)} limit",
            status=status,
        )
        declared_length = response.headers.get("content-length", "")
        if declared_length.isdigit() and int(declared_length) > self._limits.max_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._limits.max_bytes:
                raise too_large
            chunks.append(chunk)
        body = b"".join(chunks)
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
            html=_decode(body, response.charset_encoding),
            headers=dict(response.headers.items()),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )


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
    return str(parsed)


def _check_status(status: int, reason: str) -> None:
    if 200 <= status < 300:
        return
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = reason
    message = f"The page returned HTTP {status} {phrase}".rstrip()
    if status in (404, 410):
        raise FetchError("not_found", message, status=status)
    if 400 <= status < 500:
        raise FetchError("http_4xx", message, status=status)
    if 500 <= status < 600:
        raise FetchError("http_5xx", message, retryable=True, status=status)
    raise FetchError("bad_response", message, status=status)


def _transport_error(
    exc: httpx.HTTPError, url: str, target: str, limits: FetchLimits
) -> FetchError:
    host = httpx.URL(target).host
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


def _decode(body: bytes, header_charset: str | None) -> str:
    """Decode as browsers do: BOM, then the HTTP charset, then <meta charset>, then UTF-8."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    codec = _codec(header_charset) or _codec(_meta_charset(body), from_meta=True) or "utf-8"
    return body.decode(codec, errors="replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET_RE.search(body[:_PRESCAN_BYTES])
    return match.group(1).decode("ascii") if match else None


def _codec(label: str | None, *, from_meta: bool = False) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    if name in _WINDOWS_1252_CODECS:
        return "cp1252"
    # A UTF-16 label in an ASCII-readable <meta> cannot be right; browsers use UTF-8.
    if from_meta and name.startswith("utf-16"):
        return "utf-8"
    return name


def _looks_like_html(body: bytes) -> bool:
    start = body[:_PRESCAN_BYTES].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html")) or b"<html" in start


def _human_size(n_bytes: int) -> str:
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:g} MB"
    if n_bytes >= 1_000:
        return f"{n_bytes / 1_000:g} kB"
    return f"{n_bytes} bytes"
