"""The crawler's SSRF rules are the shared ones (seoblog_netguard, which the gateway's webhooks
use too); these names stay importable from here."""

from seoblog_netguard import AddressPolicy, IPAddress, IPNetwork, embedded_ipv4, literal_address

__all__ = ["AddressPolicy", "IPAddress", "IPNetwork", "embedded_ipv4", "literal_address"]
