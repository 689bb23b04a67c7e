"""Issue 12.3: `seoblog up` runs the gateway in open mode (every caller is admin), so every
service it starts binds loopback unless `--host` says otherwise."""

from __future__ import annotations

import argparse
import json

import pytest

from seoblog_devstack import up
from seoblog_devstack.infra import Infra

ANY = "0.0.0.0"  # noqa: S104 - the address under test, never bound
INFRA = Infra(nats_url="nats://x", database_url="postgresql://x", redis_url=None)


def up_options(*argv: str) -> argparse.Namespace:
    """`seoblog up`'s options as the CLI parses them (cli.up_command)."""
    parser = argparse.ArgumentParser(prog="seoblog up")
    up.add_arguments(parser)
    return parser.parse_args(argv)


def test_seoblog_up_binds_loopback_by_default_and_takes_host() -> None:
    assert up_options().host == "127.0.0.1"
    assert up_options("--host", ANY).host == ANY


def test_every_service_is_told_to_bind_loopback_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in up.SERVICES:
        monkeypatch.setenv(f"{name.upper()}_HOST", ANY)
    for service in up.parse_services(None, 8000):
        env = up.service_env(service, INFRA, "k")
        assert env[f"{service.name.upper()}_HOST"] == "127.0.0.1"
        assert service.ready_url.startswith("http://127.0.0.1:")
    assert up.service_env(up.Service("gateway", ["x"], 8000), INFRA, "k")["GATEWAY_OPEN_MODE"]


def test_another_host_reaches_every_service_and_its_readiness_probe_follows() -> None:
    service = up.Service("crawler", ["x"], 8001, host="::")
    assert up.service_env(service, INFRA, "k")["CRAWLER_HOST"] == "::"
    assert service.ready_url == "http://127.0.0.1:8001/readyz"
    service.host = "fd00::5"
    assert service.ready_url == "http://[fd00::5]:8001/readyz"


def test_loopback_is_told_apart_from_wildcards_and_other_addresses() -> None:
    assert up.is_loopback("127.0.0.1")
    assert up.is_loopback("::1")
    assert up.is_loopback("localhost")
    assert not up.is_loopback(ANY)
    assert not up.is_loopback("::")
    assert not up.is_loopback("192.168.1.5")


def test_the_gateway_and_the_monitor_are_told_the_ports_the_others_run_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_CRAWLER_URL", raising=False)
    monkeypatch.delenv("MONITOR_SERVICES", raising=False)
    services = {s.name: s for s in up.parse_services(None, 8000)}
    services["crawler"].port = 18001  # as when 8001 was taken
    up.wire(list(services.values()))

    gateway = up.service_env(services["gateway"], INFRA, "k")
    monitor = up.service_env(services["monitor"], INFRA, "k")

    assert gateway["GATEWAY_CRAWLER_URL"] == "http://127.0.0.1:18001"
    assert json.loads(monitor["MONITOR_SERVICES"]) == {
        "crawler": "http://127.0.0.1:18001",
        "translator": "http://127.0.0.1:8002",
        "generator": "http://127.0.0.1:8003",
        "gateway": "http://127.0.0.1:8000",
    }
    monkeypatch.setenv("MONITOR_SERVICES", "{}")  # the developer's own choice wins
    assert up.service_env(services["monitor"], INFRA, "k")["MONITOR_SERVICES"] == "{}"
