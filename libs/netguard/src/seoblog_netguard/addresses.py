"""Pure SSRF rules: which IP addresses a service may connect to for a user, and how a URL host
names one.

Hosts are read the way browsers read them (WHATWG URL): 2130706433, 0x7f.1, 017700000001 and
127.1 are all 127.0.0.1. An IPv6 address that carries an IPv4 address (IPv4-mapped, SIIT,
IPv4-compatible, NAT64, 6to4, Teredo) is judged by that IPv4 address, with the same rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IPv6 prefixes whose last 32 bits are an IPv4 address: IPv4-compatible (RFC 4291, deprecated;
# :: and ::1 are judged as themselves), IPv4-mapped, SIIT's IPv4-translated (RFC 2765) and
# NAT64's well-known and local-use prefixes (RFC 6052, RFC 8215).
_LOW_32_BITS = (
    _V6("::/96"),
    _V6("::ffff:0:0/96"),
    _V6("::ffff:0:0:0/96"),
    _V6("64:ff9b::/96"),
    _V6("64:ff9b:1::/48"),
)
_SIXTOFOUR = _V6("2002::/16")  # RFC 3056: the IPv4 address in bits 16 to 48
_TEREDO = _V6("2001::/32")  # RFC 4380: the server's IPv4, and the client's (obfuscated)

# IANA's special-purpose registries, the entries not reachable on the public internet. Listed
# here, not left to `ipaddress.is_global`, whose answer changes between Python versions
# (3.11 calls ::7f00:1 global).
_NOT_PUBLIC: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (carrier-grade NAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "private"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),  # the retired 6to4 relay anycast
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "private"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("2001::/23"), "reserved"),  # IETF protocol assignments (Teredo is judged above)
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "reserved"),  # SRv6 SIDs
    (_V6("fc00::/7"), "private"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses only, plus the networks in `allowed` (tests, private sites)."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> AddressPolicy:
        """The policy with these CIDRs let through as well (ValueError for a bad one)."""
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be connected to, or None when it may."""
        if self._allowed(ip):
            return None
        embedded = embedded_ipv4(ip)
        if embedded:
            reasons = [self.refusal(v4) for v4 in embedded]
            return next((r for r in reasons if r is not None), None)
        return _refusal(ip)

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed)


def _refusal(ip: IPAddress) -> str | None:
    for network, reason in _NOT_PUBLIC:
        if ip.version == network.version and ip in network:
            return reason
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (not ip.is_global, "not publicly routable"),
    )
    return next((reason for failed, reason in checks if failed), None)


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (empty for a plain one): a connection to
    it ends up at (or is relayed through) them."""
    if not isinstance(ip, ipaddress.IPv6Address) or ip in (_UNSPECIFIED, _LOOPBACK):
        return ()
    if any(ip in net for net in _LOW_32_BITS):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip in _SIXTOFOUR:
        return (ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF),)
    if ip in _TEREDO:
        server = ipaddress.IPv4Address((int(ip) >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~int(ip) & 0xFFFFFFFF)
        return (server, client)
    return ()


_UNSPECIFIED = ipaddress.IPv6Address("::")
_LOOPBACK = ipaddress.IPv6Address("::1")


def literal_address(host: str) -> IPAddress | None:
    """The IP address `host` spells (any IPv4 spelling, bracketed IPv6, localhost), or None
    for a name the resolver must look up.

    Raises ValueError for a host that looks numeric but is not a valid address (999.1.1.1),
    which a browser refuses too.
    """
    name = host.strip()
    if name.lower().rstrip(".").rsplit(".", 1)[-1] == "localhost":
        return ipaddress.IPv4Address("127.0.0.1")  # RFC 6761: always loopback, whatever DNS says
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        return ipaddress.IPv6Address(name.split("%", 1)[0])
    return _ipv4_any_spelling(name)


def _ipv4_any_spelling(host: str) -> ipaddress.IPv4Address | None:
    """WHATWG's IPv4 parser: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":  # a trailing dot
        parts.pop()
    if not parts or not _numeric(parts[-1]):
        return None  # a domain name: its last label is not a number
    if len(parts) > 4:
        raise ValueError(f"{host!r} has too many parts for an IPv4 address")
    numbers = [_number(part, host) for part in parts]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is out of range for an IPv4 address")
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _numeric(part: str) -> bool:
    try:
        _number(part, part)
    except ValueError:
        return False
    return True


def _number(part: str, host: str) -> int:
    text = part.lower()
    try:
        if text.startswith("0x"):
            return int(text[2:] or "0", 16)
        if len(text) > 1 and text.startswith("0"):
            return int(text[1:], 8)
        if text.isascii() and text.isdigit():
            return int(text, 10)
    except ValueError:
        pass
    raise ValueError(f"{part!r} in {host!r} is not a number")
