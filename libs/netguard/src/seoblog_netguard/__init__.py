"""Where a service may connect on a user's behalf (crawled pages, webhook callbacks): one
address policy (public addresses only, IPv4 inside IPv6 included), one host-name check, and
one guarded HTTP transport that connects to the very address it checked."""

from .addresses import AddressPolicy, IPAddress, IPNetwork, embedded_ipv4, literal_address
from .hostnames import BadHostname, check_hostname, hostname_problem
from .transport import (
    AddressGuard,
    BlockedAddress,
    GuardedBackend,
    GuardedTransport,
    InvalidHost,
    PerOriginTransport,
    Resolver,
    guarded_client,
    system_resolver,
)

__all__ = [
    "AddressGuard",
    "AddressPolicy",
    "BadHostname",
    "BlockedAddress",
    "GuardedBackend",
    "GuardedTransport",
    "IPAddress",
    "IPNetwork",
    "InvalidHost",
    "PerOriginTransport",
    "Resolver",
    "check_hostname",
    "embedded_ipv4",
    "guarded_client",
    "hostname_problem",
    "literal_address",
    "system_resolver",
]
