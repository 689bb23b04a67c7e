"""The crawler's HTTP transport is the shared guarded one (seoblog_netguard): every connection
checks the host name, resolves it once, refuses non-public addresses and connects to the
address it checked, at every redirect hop and robots.txt fetch."""

from seoblog_netguard import (
    AddressGuard,
    BadHostname,
    BlockedAddress,
    GuardedBackend,
    GuardedTransport,
    InvalidHost,
    PerOriginTransport,
    Resolver,
    check_hostname,
    guarded_client,
    system_resolver,
)

__all__ = [
    "AddressGuard",
    "BadHostname",
    "BlockedAddress",
    "GuardedBackend",
    "GuardedTransport",
    "InvalidHost",
    "PerOriginTransport",
    "Resolver",
    "check_hostname",
    "guarded_client",
    "system_resolver",
]
