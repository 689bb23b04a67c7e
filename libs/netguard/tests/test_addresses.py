"""Pure SSRF rules: every spelling of an address, every kind of address we refuse, and every
way an IPv6 address can carry an IPv4 one."""

import ipaddress

import pytest

from seoblog_netguard import AddressPolicy, embedded_ipv4, literal_address

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
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("192.0.2.7", "documentation"),
        ("198.18.0.1", "private"),  # benchmarking
        ("2001:db8::1", "documentation"),
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


# Each way IPv6 carries an IPv4 address, around each IPv4 address that must stay unreachable.
EMBEDDINGS = {
    "IPv4-mapped": lambda v4: f"::ffff:{v4}",
    "SIIT (IPv4-translated)": lambda v4: f"::ffff:0:{v4}",
    "IPv4-compatible": lambda v4: f"::{v4}",
    "NAT64 well-known": lambda v4: f"64:ff9b::{v4}",
    "NAT64 local-use": lambda v4: f"64:ff9b:1::{v4}",
    "6to4": lambda v4: "2002:{:02x}{:02x}:{:02x}{:02x}::1".format(*map(int, v4.split("."))),
    "Teredo client": lambda v4: _teredo(server="65.54.227.120", client=v4),
    "Teredo server": lambda v4: _teredo(server=v4, client="93.184.216.34"),
}
REFUSED_IPV4 = {
    "169.254.169.254": "link-local",  # cloud metadata
    "127.0.0.1": "loopback",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "shared (carrier-grade NAT)",
    "0.1.2.3": "unspecified",  # "this network"
    "224.0.0.1": "multicast",
}


def _teredo(server: str, client: str) -> str:
    """2001:0:<server>:<flags>:<port ^ 0xffff>:<client ^ 0xffffffff> (RFC 4380)."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= (
        (0x8000 << 48)
        | ((0xFFFF ^ 40000) << 32)
        | (int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF)
    )
    return str(ipaddress.IPv6Address(value))


@pytest.mark.parametrize("form", sorted(EMBEDDINGS))
@pytest.mark.parametrize("ipv4", sorted(REFUSED_IPV4))
def test_ipv4_inside_ipv6_is_judged_by_the_ipv4_address(form: str, ipv4: str) -> None:
    address = ipaddress.IPv6Address(EMBEDDINGS[form](ipv4))

    assert ipaddress.IPv4Address(ipv4) in embedded_ipv4(address)
    assert PUBLIC.refusal(address) == REFUSED_IPV4[ipv4]


@pytest.mark.parametrize("form", sorted(EMBEDDINGS))
def test_ipv4_inside_ipv6_is_allowed_when_the_ipv4_address_is_public(form: str) -> None:
    assert PUBLIC.refusal(ipaddress.IPv6Address(EMBEDDINGS[form]("93.184.216.34"))) is None


@pytest.mark.parametrize("form", sorted(EMBEDDINGS))
def test_an_allowlisted_ipv4_network_is_allowed_inside_ipv6_too(form: str) -> None:
    policy = AddressPolicy.allowing(["10.20.0.0/16"])
    inside = ipaddress.IPv6Address(EMBEDDINGS[form]("10.20.3.4"))
    outside = ipaddress.IPv6Address(EMBEDDINGS[form]("10.21.3.4"))

    assert policy.refusal(inside) is None
    assert policy.refusal(outside) == "private"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::7f00:1", "loopback"),  # Python 3.11's is_global calls this one global
        ("::ffff:0:a9fe:a9fe", "link-local"),
        ("64:ff9b:1::a9fe:a9fe", "link-local"),
        ("2002:a9fe:a9fe::", "link-local"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "documentation"),  # RFC 4380's own example
    ],
)
def test_the_policy_does_not_trust_is_global_alone(address: str, reason: str) -> None:
    assert PUBLIC.refusal(ipaddress.ip_address(address)) == reason
