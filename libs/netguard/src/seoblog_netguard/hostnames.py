"""Pure host name rules: a name DNS can carry (labels of 1 to 63 octets, 253 in all) and IDNA
can encode, checked before anything tries to resolve it."""

from __future__ import annotations

import idna

from .addresses import literal_address

MAX_NAME = 253  # octets in a name, without the root's trailing dot (RFC 1035 2.3.4)
MAX_LABEL = 63


class BadHostname(ValueError):
    """The host of a URL is not a name DNS or IDNA can carry."""

    def __init__(self, host: str, reason: str) -> None:
        shown = host if len(host) <= 80 else host[:77] + "..."
        super().__init__(f"the host name {shown!r} is not valid: {reason}")
        self.host = host
        self.reason = reason


def hostname_problem(host: str) -> str | None:
    """Why `host` (as a URL carries it, IP literals included) can never be resolved, or None.

    International names are checked as IDNA 2008 (UTS 46) encodes them; the result must fit
    DNS's limits, which the system resolver would otherwise refuse with a UnicodeError."""
    if not host:
        return "it is empty"
    try:
        if literal_address(host) is not None:
            return None
    except ValueError as exc:
        return str(exc)
    name = host[:-1] if host.endswith(".") else host
    if name.isascii():
        ascii_name = name
    else:
        try:
            ascii_name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            return f"it cannot be encoded as an international domain name ({exc})"
    labels = ascii_name.split(".")
    if any(not label for label in labels):
        return "it has an empty label (two dots in a row, or a leading dot)"
    if too_long := next((label for label in labels if len(label) > MAX_LABEL), None):
        return f"a label is {len(too_long)} characters long; DNS allows at most {MAX_LABEL}"
    if len(ascii_name) > MAX_NAME:
        return f"it is {len(ascii_name)} characters long; DNS allows at most {MAX_NAME}"
    # Past these checks, the IDNA codec socket.getaddrinfo applies to a str host takes it.
    return None


def check_hostname(host: str) -> str:
    """`host` unchanged, or BadHostname saying why it can never be resolved."""
    if (reason := hostname_problem(host)) is not None:
        raise BadHostname(host, reason)
    return host
