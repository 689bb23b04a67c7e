"""The per-origin guarded transport: many hosts at once, idle origins closed beyond a bound."""

import asyncio
import ipaddress

import httpx

from crawler.addresses import AddressPolicy, IPAddress
from crawler.fetch import _retry_after_s
from crawler.transport import AddressGuard, PerOriginTransport
from seoblog_testing.site import FixtureSite

PAGE = "<p>origin</p>"


async def loopback(host: str, port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


async def test_requests_to_many_origins_share_a_bounded_set_of_pools(
    fixture_site: FixtureSite,
) -> None:
    fixture_site.route("/origin", body=PAGE)
    guard = AddressGuard(AddressPolicy.allowing(["127.0.0.1/32"]), loopback)
    transport = PerOriginTransport(guard, per_origin_connections=2, max_origins=3)
    port = fixture_site.server.port

    async with httpx.AsyncClient(transport=transport) as client:
        urls = [f"http://host{i % 8}.test:{port}/origin" for i in range(32)]
        responses = await asyncio.gather(*(client.get(url) for url in urls))
        again = await client.get(f"http://host0.test:{port}/origin")

    assert [r.text for r in responses] == [PAGE] * 32
    assert again.text == PAGE


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert _retry_after_s("120") == 120
    assert _retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now
    assert _retry_after_s("soon") is None
    assert _retry_after_s(None) is None
