"""The chat-completions calls themselves, over aiohttp or httpx with no SDK in between: a POST
of the request's JSON, the answer's JSON back (or its server-sent events, line by line).

The openai SDK turned every call into its typed request and response models: 3.9 ms of CPU a
call against 1.4 ms here and 1.0 ms for a bare aiohttp POST (bench/llm/client_cpu.py), and
importing it took 0.5-1.2 s (warm or cold) and 26 MB of each LLM-using service's start-up. It
is still what the Batch API's file and batch calls go through (seoblog_runtime.batch), imported
in a thread before the first batch.

Failures come out as the errors below, which the client's retries, breaker and job error codes
read (seoblog_runtime.llm): a status error carries the status, the headers (Retry-After) and
the provider's message; a dropped connection, mid-stream too, is an LlmConnectionError."""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import aiohttp
    import httpx2

DEFAULT_BASE_URL = "https://api.openai.com/v1"
USER_AGENT = "seoblog"


class LlmHttpError(Exception):
    """A chat-completions call that brought no usable answer."""


class LlmStatusError(LlmHttpError):
    """The provider answered with an HTTP error status."""

    def __init__(self, status_code: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status_code = status_code
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = _error_message(body)
        super().__init__(f"HTTP {status_code}: {self.body}"[:500])


class LlmConnectionError(LlmHttpError):
    """No answer: the connection failed or dropped (before or during the answer)."""


class LlmTimeoutError(LlmConnectionError):
    """No answer within the per-call timeout (connect, or a read of the answer)."""


class LlmAnswerError(LlmHttpError):
    """The provider answered, but not with a completion (an error event mid-stream, a body
    without choices): its fault or ours, not an outage."""


def _error_message(body: bytes) -> str:
    """The provider's `error.message` when the body has one, else the body's start."""
    try:
        found = json.loads(body)
    except ValueError:
        return body[:300].decode(errors="replace")
    if isinstance(found, dict):
        error = found.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return body[:300].decode(errors="replace")


class Transport(ABC):
    """A POST of the request's JSON: the answer's JSON, or its lines as they come. Each
    library's part is `_post` (its errors mapped to the ones above), reading a response
    whole, and reading it line by line."""

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        async with self._post(path, body) as response:
            raw = await self._read(response)
        return _answer_json(raw)

    @contextlib.asynccontextmanager
    async def stream_lines(
        self, path: str, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[str]]:
        async with self._post(path, body) as response:
            yield self._lines(response)

    @abstractmethod
    def _post(
        self, path: str, body: dict[str, Any]
    ) -> contextlib.AbstractAsyncContextManager[Any]: ...

    @abstractmethod
    async def _read(self, response: Any) -> bytes: ...

    @abstractmethod
    def _lines(self, response: Any) -> AsyncIterator[str]: ...

    @abstractmethod
    async def close(self) -> None: ...


def transport(
    kind: Literal["aiohttp", "httpx"], base_url: str | None, api_key: str, timeout_s: float
) -> Transport:
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if kind == "aiohttp":
        return AiohttpTransport(base, headers, timeout_s)
    return HttpxTransport(base, headers, timeout_s)


class AiohttpTransport(Transport):
    """aiohttp parses HTTP in C: the cheapest per call and per streamed chunk, about 10 MB."""

    def __init__(self, base: str, headers: dict[str, str], timeout_s: float) -> None:
        import aiohttp
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        self._aiohttp = aiohttp
        self.base, self.headers = base, headers
        # Per read, like the SDK's timeout: a long answer that keeps streaming is not cut.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        # HTTPS_PROXY/NO_PROXY (and netrc proxy credentials) as httpx honours them, read once:
        # aiohttp's trust_env reads them in a thread on every request.
        self.proxy: URL | None = None
        self.proxy_auth: aiohttp.BasicAuth | None = None
        with contextlib.suppress(LookupError):
            self.proxy, self.proxy_auth = get_env_proxy_for_url(URL(base))
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # made on the running loop
            self._session = self._aiohttp.ClientSession(
                headers=self.headers,
                timeout=self.timeout,
                cookie_jar=self._aiohttp.DummyCookieJar(),
            )
        return self._session

    @contextlib.asynccontextmanager
    async def _post(self, path: str, body: dict[str, Any]) -> AsyncIterator[aiohttp.ClientResponse]:
        aiohttp = self._aiohttp
        try:
            async with self._open().post(
                self.base + path,
                data=json.dumps(body),
                proxy=self.proxy,
                proxy_auth=self.proxy_auth,
            ) as response:
                if response.status >= 400:
                    raise LlmStatusError(response.status, response.headers, await response.read())
                yield response
        except TimeoutError as exc:
            raise LlmTimeoutError(f"no answer in time: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise LlmConnectionError(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        return await response.read()

    def _lines(self, response: aiohttp.ClientResponse) -> AsyncIterator[str]:
        return _decoded(response.content)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _decoded(lines: AsyncIterable[bytes]) -> AsyncIterator[str]:
    async for line in lines:
        yield line.decode().rstrip("\r\n")


class HttpxTransport(Transport):
    """httpx (h11 in Python): more CPU per call, about 10 MB less memory than aiohttp."""

    def __init__(self, base: str, headers: dict[str, str], timeout_s: float) -> None:
        import httpx2

        self._httpx = httpx2
        self.base = base
        self.client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout_s))

    @contextlib.asynccontextmanager
    async def _post(self, path: str, body: dict[str, Any]) -> AsyncIterator[httpx2.Response]:
        httpx2 = self._httpx
        request = self.client.build_request("POST", self.base + path, content=json.dumps(body))
        try:
            response = await self.client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    raise LlmStatusError(
                        response.status_code, response.headers, await response.aread()
                    )
                yield response
            finally:
                await response.aclose()
        except httpx2.TimeoutException as exc:
            raise LlmTimeoutError(f"no answer in time: {type(exc).__name__}") from exc
        except httpx2.TransportError as exc:
            raise LlmConnectionError(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def _read(self, response: httpx2.Response) -> bytes:
        return await response.aread()

    def _lines(self, response: httpx2.Response) -> AsyncIterator[str]:
        return response.aiter_lines()

    async def close(self) -> None:
        await self.client.aclose()


def _answer_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise LlmAnswerError(f"the answer is not JSON: {raw[:200]!r}") from exc
