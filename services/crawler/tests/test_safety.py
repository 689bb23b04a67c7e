"""SSRF protection and body limits against a real local server: refused addresses in every
spelling and at every redirect hop, the connection pinned to the checked address, gzip bombs."""

import gzip
import ipaddress
import zlib
from typing import Any

import pytest

from crawler.addresses import AddressPolicy, IPAddress
from crawler.fetch import FetchedPage, Fetcher, FetchError, FetchLimits
from crawler.transport import Resolver, system_resolver
from seoblog_testing.plugin import unique_name
from seoblog_testing.site import FixtureSite

PAGE = "<!doctype html><html><head><title>Safe</title></head><body><p>Safe</p></body></html>"
ONLY_127_0_0_1 = AddressPolicy.allowing(["127.0.0.1/32"])


def unique_path() -> str:
    return f"/{unique_name('safe')}"


async def fetch(
    url: str,
    policy: AddressPolicy | None = None,
    resolver: Resolver = system_resolver,
    **limits: Any,
) -> FetchedPage:
    limits.setdefault("attempts", 1)
    async with Fetcher(FetchLimits(**limits), policy=policy, resolver=resolver) as fetcher:
        return await fetcher.fetch(url)


async def fetch_error(url: str, policy: AddressPolicy | None = None, **kw: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetch(url, policy, **kw)
    return caught.value


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "017700000001",
        "127.1",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "localhost",
        "localhost.",
    ],
)
async def test_fetch_refuses_loopback_in_every_spelling(
    fixture_site: FixtureSite, host: str
) -> None:
    path = unique_path()
    fixture_site.route(path, body=PAGE)

    error = await fetch_error(f"http://{host}:{fixture_site.server.port}{path}")

    assert (error.code, error.retryable) == ("blocked_address", False)
    assert "loopback" in error.message
    assert fixture_site.hits(path) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.0.1./admin",
        "http://0.0.0.0:80/",
        "http://224.0.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
    ],
)
async def test_fetch_refuses_private_link_local_multicast_and_unspecified_hosts(url: str) -> None:
    error = await fetch_error(url)

    assert error.code == "blocked_address"


async def test_allowlisted_network_is_fetched_whatever_the_spelling(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.route(path, body=PAGE)

    page = await fetch(f"http://2130706433:{fixture_site.server.port}{path}", ONLY_127_0_0_1)

    assert page.html == PAGE
    assert fixture_site.hits(path) == 1


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
        "http://127.0.0.2:{port}/internal",  # loopback, but outside the allowlist
        "http://0x7f.0.0.2:{port}/internal",
    ],
)
async def test_fetch_checks_every_redirect_hop(fixture_site: FixtureSite, location: str) -> None:
    path = unique_path()
    target = location.format(port=fixture_site.server.port)
    fixture_site.redirect_chain(path, hops=2, final=target)

    error = await fetch_error(fixture_site.url(path), ONLY_127_0_0_1)

    assert error.code == "blocked_address"
    assert fixture_site.hits(path) == 1  # the first hop was fetched, the last refused


async def test_fetch_connects_to_the_address_it_checked_so_rebinding_cannot_slip_past(
    fixture_site: FixtureSite,
) -> None:
    """A name that answers an allowed address to the check and an internal one afterwards
    (DNS rebinding) is resolved once, and the connection goes to the address checked."""
    path = unique_path()
    fixture_site.route(path, body=PAGE)
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        first = len(lookups) == 1
        return [ipaddress.ip_address("127.0.0.1" if first else "10.0.0.1")]

    port = fixture_site.server.port
    page = await fetch(f"http://rebind.test:{port}{path}", ONLY_127_0_0_1, resolver=rebinding)

    assert page.html == PAGE
    assert lookups == ["rebind.test"]
    assert fixture_site.requests(path)[0]["headers"]["host"] == f"rebind.test:{port}"


async def test_fetch_refuses_a_name_when_any_of_its_addresses_is_internal() -> None:
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")]

    error = await fetch_error("http://mixed.test/", resolver=mixed)

    assert error.code == "blocked_address"
    assert "127.0.0.1" in error.message


@pytest.mark.parametrize(
    "url",
    [
        f"http://{'a' * 64}.example/article",  # a label over 63 characters
        "http://" + ".".join(["a" * 63] * 4) + "/article",  # a name over 253 characters
    ],
)
async def test_a_host_name_dns_cannot_carry_is_a_bad_url_not_a_crash(url: str) -> None:
    """socket.getaddrinfo raises UnicodeError for these; the fetch fails for good instead."""
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return await system_resolver(host, port)

    error = await fetch_error(url, resolver=resolver)

    assert (error.code, error.retryable) == ("bad_url", False)
    assert "not valid" in error.message
    assert lookups == []


async def test_a_redirect_to_a_host_name_dns_cannot_carry_is_a_bad_url(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    fixture_site.redirect_chain(path, hops=1, final=f"http://{'b' * 64}.example/next")

    error = await fetch_error(fixture_site.url(path), ONLY_127_0_0_1)

    assert (error.code, error.retryable) == ("bad_url", False)


async def test_a_unicode_error_from_the_resolver_is_a_bad_url() -> None:
    async def strict(host: str, port: int) -> list[IPAddress]:
        raise UnicodeError("encoding with 'idna' codec failed")

    error = await fetch_error("http://fine.example/", resolver=strict)

    assert error.code == "bad_url"


async def test_fetch_stops_inflating_a_gzip_bomb_at_the_decoded_limit(
    fixture_site: FixtureSite,
) -> None:
    path = unique_path()
    bomb = gzip.compress(b"<html>" + b"\0" * 50_000_000, compresslevel=9)  # about 50 kB
    fixture_site.route(path, body=bomb, headers={"content-encoding": "gzip"})

    error = await fetch_error(fixture_site.url(path), ONLY_127_0_0_1, max_decoded_bytes=1_000_000)

    assert len(bomb) < 100_000
    assert error.code == "too_large"
    assert error.message == "The page decompresses to more than the 1 MB limit"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib header
    ],
)
async def test_fetch_inflates_compressed_pages(
    fixture_site: FixtureSite, encoding: str, encode: Any
) -> None:
    path = unique_path()
    fixture_site.route(path, body=encode(PAGE.encode()), headers={"content-encoding": encoding})

    page = await fetch(fixture_site.url(path), ONLY_127_0_0_1)

    assert page.html == PAGE
    assert fixture_site.requests(path)[0]["headers"]["accept-encoding"] == "gzip, deflate"


async def test_fetch_refuses_an_encoding_it_did_not_ask_for(fixture_site: FixtureSite) -> None:
    path = unique_path()
    fixture_site.route(path, body=b"\x1b\x00\x00", headers={"content-encoding": "br"})

    error = await fetch_error(fixture_site.url(path), ONLY_127_0_0_1)

    assert error.code == "bad_response"
