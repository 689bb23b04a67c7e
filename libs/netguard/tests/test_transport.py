"""The guarded transport against a real local server: one resolution per connection, the
connection made to the address checked, refusals before any byte is sent, bounded pools."""

import asyncio
import ipaddress
import socket

import httpx
import pytest

from seoblog_netguard import (
    AddressGuard,
    AddressPolicy,
    BadHostname,
    BlockedAddress,
    IPAddress,
    PerOriginTransport,
    guarded_client,
)
from seoblog_testing.plugin import unique_name
from seoblog_testing.site import FixtureSite

PAGE = "<p>origin</p>"
ONLY_127_0_0_1 = AddressPolicy.allowing(["127.0.0.1/32"])


async def loopback(host: str, port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


def causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


async def test_requests_to_many_origins_share_a_bounded_set_of_pools(
    fixture_site: FixtureSite,
) -> None:
    fixture_site.route("/origin", body=PAGE)
    guard = AddressGuard(ONLY_127_0_0_1, loopback)
    transport = PerOriginTransport(guard, per_origin_connections=2, max_origins=3)
    port = fixture_site.server.port

    async with httpx.AsyncClient(transport=transport) as client:
        urls = [f"http://host{i % 8}.test:{port}/origin" for i in range(32)]
        responses = await asyncio.gather(*(client.get(url) for url in urls))
        again = await client.get(f"http://host0.test:{port}/origin")

    assert [r.text for r in responses] == [PAGE] * 32
    assert again.text == PAGE


async def test_a_rebinding_name_is_resolved_once_and_connected_to_where_it_was_checked(
    fixture_site: FixtureSite,
) -> None:
    """The name answers an allowed address first and an internal one afterwards: the
    connection goes to the first answer, the one that was checked."""
    path = f"/{unique_name('rebind')}"
    fixture_site.route(path, body=PAGE)
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1" if len(lookups) == 1 else "10.0.0.1")]

    async with guarded_client(AddressGuard(ONLY_127_0_0_1, rebinding)) as client:
        response = await client.get(f"http://rebind.test:{fixture_site.server.port}{path}")

    assert response.text == PAGE
    assert lookups == ["rebind.test"]


async def test_a_name_rebound_to_loopback_never_reaches_the_loopback_server(
    fixture_site: FixtureSite,
) -> None:
    """Public policy: the second answer (127.0.0.1, where a trap listens) is refused in the
    connection itself, so nothing is sent to the trap."""
    path = f"/{unique_name('trap')}"
    fixture_site.route(path, body=PAGE)

    async with guarded_client(AddressGuard(AddressPolicy(), loopback)) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://rebind.test:{fixture_site.server.port}{path}")

    [blocked] = [c for c in causes(caught.value) if isinstance(c, BlockedAddress)]
    assert (blocked.reason, str(blocked.address)) == ("loopback", "127.0.0.1")
    assert fixture_site.hits(path) == 0


async def test_an_ipv6_address_carrying_a_loopback_ipv4_is_refused_before_connecting(
    fixture_site: FixtureSite,
) -> None:
    path = f"/{unique_name('nat64')}"
    fixture_site.route(path, body=PAGE)

    async def nat64(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("64:ff9b::127.0.0.1")]

    async with guarded_client(AddressGuard(AddressPolicy(), nat64)) as client:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            await client.get(f"http://nat64.test:{fixture_site.server.port}{path}")
    assert fixture_site.hits(path) == 0


async def test_a_host_name_dns_cannot_carry_fails_as_bad_hostname_without_a_lookup() -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    async with guarded_client(AddressGuard(ONLY_127_0_0_1, resolver)) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://{'a' * 64}.test/")

    assert any(isinstance(c, BadHostname) for c in causes(caught.value))
    assert lookups == []


async def test_a_unicode_error_from_the_resolver_becomes_bad_hostname() -> None:
    async def strict(host: str, port: int) -> list[IPAddress]:
        raise UnicodeError("label too long")

    async with guarded_client(AddressGuard(ONLY_127_0_0_1, strict)) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://fine.test/")

    assert any(isinstance(c, BadHostname) for c in causes(caught.value))


async def test_a_name_that_does_not_resolve_is_a_connect_error_from_gaierror() -> None:
    async with guarded_client(AddressGuard(AddressPolicy())) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://no-such-host.invalid/")

    assert any(isinstance(c, socket.gaierror) for c in causes(caught.value))
