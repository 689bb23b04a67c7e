"""Pure SSRF rules: which IP addresses the crawler may connect to, and how a URL host names one.

Hosts are read the way browsers read them (WHATWG URL): 2130706433, 0x7f.1, 017700000001 and
127.1 are all 127.0.0.1. IPv6 forms that embed an IPv4 address are judged by that address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 and 8215).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses only, plus the networks in `allowed` (tests, private sites)."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be fetched from, or None when it may."""
        if self._allowed(ip):
            return None
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            if self._allowed(embedded):
                return None
            return _refusal(embedded)
        return _refusal(ip)

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed)


def _refusal(ip: IPAddress) -> str | None:
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


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


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
