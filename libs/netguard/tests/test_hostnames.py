"""Host names DNS cannot carry are refused before anything resolves them."""

import pytest

from seoblog_netguard import BadHostname, check_hostname, hostname_problem

LABEL_63 = "a" * 63


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "example.com.",
        f"{LABEL_63}.example",
        ".".join([LABEL_63] * 3) + "." + "b" * 61,  # 253 characters
        "xn--bcher-kva.de",
        "bücher.de",
        "127.0.0.1",
        "[::1]",
        "localhost",
        "under_score.example",
    ],
)
def test_names_dns_can_carry_pass(host: str) -> None:
    assert hostname_problem(host) is None
    assert check_hostname(host) == host
    if host.isascii():
        host.encode("idna")  # and the system resolver's codec takes it


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("a" * 64 + ".example", "at most 63"),
        ("a" * 64, "at most 63"),
        (".".join([LABEL_63] * 4), "at most 253"),  # 255 characters
        ("a..example", "empty label"),
        (".example", "empty label"),
        ("", "empty"),
        ("xn--bcher-kva\u200d.de", "international"),  # a joiner IDNA 2008 refuses here
        ("ex ample\u00e9.com", "international"),
        ("999.1.1.1", "out of range"),
    ],
)
def test_names_dns_cannot_carry_are_refused_with_a_reason(host: str, reason: str) -> None:
    problem = hostname_problem(host)
    assert problem is not None
    assert reason in problem
    with pytest.raises(BadHostname, match="is not valid"):
        check_hostname(host)


def test_the_system_resolver_would_have_raised_unicode_error_for_a_64_character_label() -> None:
    """What the check saves callers from: socket.getaddrinfo's IDNA codec fails like this."""
    with pytest.raises(UnicodeError):
        ("a" * 64 + ".example").encode("idna")
