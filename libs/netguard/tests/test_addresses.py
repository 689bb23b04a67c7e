"""Pure SSRF rules: every spelling of an address, and every kind of address we refuse."""

import ipaddress

import pytest

from crawler.addresses import AddressPolicy, literal_address

PUBLIC = AddressPolicy()


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("017700000001", "127.0.0.1"),  # octal
        ("0x7f000001", "127.0.0.1"),  # hex
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # short forms
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),  # trailing dot
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("localhost", "127.0.0.1"),  # RFC 6761, whatever the resolver says
        ("LocalHost.", "127.0.0.1"),
        ("api.localhost", "127.0.0.1"),
    ],
)
def test_literal_address_reads_every_spelling_of_an_ip(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "example.com.", "1.2.3.example", "xn--bcher-kva"])
def test_literal_address_leaves_names_to_the_resolver(host: str) -> None:
    assert literal_address(host) is None


@pytest.mark.parametrize("host", ["256.1.1.1", "1.2.3.4.5", "4294967296", "0x100.1.1.1"])
def test_literal_address_rejects_numbers_out_of_range(host: str) -> None:
    with pytest.raises(ValueError, match=r"IPv4|number"):
        literal_address(host)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved (Python counts 240/4 as private too)
        ("100.64.0.1", "not publicly routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
    ],
)
def test_policy_refuses_addresses_that_are_not_public(address: str, reason: str) -> None:
    assert PUBLIC.refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_policy_allows_public_addresses(address: str) -> None:
    assert PUBLIC.refusal(ipaddress.ip_address(address)) is None


def test_allowlist_admits_chosen_networks_in_every_spelling() -> None:
    policy = AddressPolicy.allowing(["127.0.0.0/8", "10.20.0.0/16"])

    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert policy.refusal(ipaddress.ip_address("10.21.3.4")) == "private"
    assert policy.refusal(ipaddress.ip_address("::1")) == "loopback"
