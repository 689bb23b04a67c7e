"""A guarded HTTP transport: every TCP connection checks its host name, resolves it once,
checks every address against the SSRF policy, and connects to the very address it checked.

Checking in the connection itself (not before the request) covers every redirect hop, and
leaves no gap between the check and the connect for DNS rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .addresses import AddressPolicy, IPAddress, literal_address
from .hostnames import BadHostname, check_hostname

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class BlockedAddress(httpcore.ConnectError):
    """The host resolves to an address the policy refuses."""

    def __init__(self, host: str, address: IPAddress | None, reason: str) -> None:
        where = f"{host} ({address})" if address is not None and str(address) != host else host
        super().__init__(f"{where} is a {reason} address")
        self.host = host
        self.address = address
        self.reason = reason


class InvalidHost(httpcore.ConnectError, BadHostname):
    """The host is not a name DNS can carry: a connection error that is a BadHostname too
    (httpcore's pool drops an exception's cause, so the reason travels on the error)."""

    def __init__(self, host: str, reason: str) -> None:
        BadHostname.__init__(self, host, reason)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses the operating system's resolver gives for `host`, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    seen: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    return seen


class AddressGuard:
    """Resolves a host and refuses it when any of its addresses is not allowed."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    async def addresses(
        self, host: str, port: int, timeout_s: float | None = None
    ) -> list[IPAddress]:
        """The addresses to connect to, in order; BlockedAddress when any is refused,
        InvalidHost for a name that cannot be resolved, ConnectError when it has none."""
        try:
            literal = literal_address(host)
        except ValueError as exc:
            raise BlockedAddress(host, None, f"malformed ({exc})") from None
        if literal is None:
            try:
                check_hostname(host)
            except BadHostname as exc:
                raise InvalidHost(host, exc.reason) from None
        # One bad address is enough to refuse: a name pointing at both a public and an
        # internal address is an attack more often than an accident.
        addresses = [literal] if literal is not None else await self._resolve(host, port, timeout_s)
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no addresses")
        for ip in addresses:
            if (reason := self.policy.refusal(ip)) is not None:
                raise BlockedAddress(host, ip, reason)
        return addresses

    async def _resolve(self, host: str, port: int, timeout_s: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(timeout_s):
                return await self.resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except UnicodeError as exc:  # the resolver's IDNA codec, on a name check_hostname passed
            raise InvalidHost(host, str(exc)) from exc


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard let through."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.guard.addresses(host, port, timeout)
        except OSError as exc:  # socket.gaierror: the name does not resolve
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        failure: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a guarded client does not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses GuardedBackend.

    httpx has no public way to pass a network backend yet (encode/httpx#3749), so the pool is
    swapped after construction; httpcore's network backend API itself is public.
    """

    def __init__(
        self, backend: GuardedBackend, ssl_context: ssl.SSLContext, max_connections: int
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


@dataclass
class _Origin:
    transport: GuardedTransport
    in_flight: int = 0


class PerOriginTransport(httpx.AsyncBaseTransport):
    """One small guarded connection pool per origin (scheme, host, port).

    httpcore's pool looks at every connection for every queued request, so one pool holding
    hundreds of hosts' connections spends O(connections x requests) CPU per request; a crawler
    talks to many hosts at once. Idle origins beyond `max_origins` are closed, oldest first.
    """

    def __init__(
        self, guard: AddressGuard, *, per_origin_connections: int = 8, max_origins: int = 256
    ) -> None:
        self._backend = GuardedBackend(guard)
        # One TLS context for all: loading the CA bundle costs milliseconds each time.
        self._ssl_context = httpx.create_ssl_context(trust_env=False)
        self._per_origin = per_origin_connections
        self._max_origins = max_origins
        self._origins: OrderedDict[tuple[bytes, bytes, int | None], _Origin] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        origin = self._origins.get(key)
        if origin is None:
            await self._evict_idle()
            origin = _Origin(GuardedTransport(self._backend, self._ssl_context, self._per_origin))
            self._origins[key] = origin
        self._origins.move_to_end(key)
        origin.in_flight += 1
        try:
            response = await origin.transport.handle_async_request(request)
        except BaseException:
            origin.in_flight -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Released(response.stream, origin),
            extensions=response.extensions,
        )

    async def _evict_idle(self) -> None:
        excess = len(self._origins) - self._max_origins + 1
        for key in [k for k, o in self._origins.items() if o.in_flight == 0][: max(excess, 0)]:
            await self._origins.pop(key).transport.aclose()

    async def aclose(self) -> None:
        origins, self._origins = list(self._origins.values()), OrderedDict()
        for origin in origins:
            await origin.transport.aclose()


class _Released(httpx.AsyncByteStream):
    """A response body that tells its origin when it is done with the connection."""

    def __init__(self, inner: httpx.AsyncByteStream, origin: _Origin) -> None:
        self._inner = inner
        self._origin: _Origin | None = origin

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._origin is not None:
                self._origin.in_flight -= 1
                self._origin = None


def guarded_client(
    guard: AddressGuard, *, per_origin_connections: int = 8, timeout_s: float | None = None
) -> httpx.AsyncClient:
    """An httpx client that can only reach addresses `guard` allows (no proxies from the
    environment: a proxy would connect on our behalf, out of the guard's sight). Redirects
    are not followed unless a request asks (then up to five, each hop guarded).

    `timeout_s` bounds each network operation (None: unbounded); without it httpx's own
    default of 5 s would cut every slower answer short, whatever budget the caller gives."""
    return httpx.AsyncClient(
        transport=PerOriginTransport(guard, per_origin_connections=per_origin_connections),
        trust_env=False,
        max_redirects=5,
        timeout=httpx.Timeout(timeout_s),
    )
