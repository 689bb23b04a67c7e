"""Alert webhooks go through the shared address guard (seoblog_netguard), as the gateway's job
webhooks do: a receiver on loopback, or a name that resolves to it, is refused unless
MONITOR_ALERT_WEBHOOK_ALLOWED_NETWORKS lets it through; a refused delivery is not retried."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor import alert_rules as rules
from monitor.settings import Settings
from monitor.webhooks import AlertWebhooks
from seoblog_contracts import AlertFired
from seoblog_netguard import IPAddress
from seoblog_testing import wait_until
from seoblog_testing.servers import BackgroundServer


class Receiver:
    def __init__(self) -> None:
        self.posts: list[bytes] = []
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        self.posts.append(await request.body())
        return Response(status_code=204)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, BackgroundServer]]:
    found = Receiver()
    with BackgroundServer(found.app, name="alert-receiver") as server:
        yield found, server


def alert() -> AlertFired:
    return AlertFired(alert=rules.SERVICE_DOWN, severity="critical", summary="crawler down")


async def deliver(webhooks: AlertWebhooks) -> None:
    await webhooks.start()
    try:
        webhooks.send(alert())
        await wait_until(lambda: not webhooks._tasks, timeout_s=10)
    finally:
        await webhooks.stop()


async def test_a_loopback_receiver_is_refused_without_the_allow_list(receiver, caplog) -> None:
    hooks, server = receiver
    webhooks = AlertWebhooks([f"{server.url}/hook"], None, backoff_s=(0.05, 0.05))

    with caplog.at_level(logging.WARNING, logger="seoblog.monitor.webhooks"):
        await deliver(webhooks)

    assert hooks.posts == []
    assert webhooks.blocked == 1  # once: a refused address is not retried
    said = caplog.text
    assert "127.0.0.1 is a loopback address" in said  # at start-up, naming the setting
    assert "MONITOR_ALERT_WEBHOOK_ALLOWED_NETWORKS" in said


async def test_a_name_that_resolves_to_loopback_is_refused(receiver) -> None:
    hooks, server = receiver
    port = server.url.rsplit(":", 1)[1]

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]  # hooks.example.com, today

    webhooks = AlertWebhooks(
        [f"http://hooks.example.com:{port}/hook"], None, backoff_s=(), resolver=rebinding
    )

    await deliver(webhooks)

    assert hooks.posts == []
    assert webhooks.blocked == 1


async def test_the_allow_list_lets_a_receiver_on_an_inside_network_through(receiver) -> None:
    hooks, server = receiver
    webhooks = AlertWebhooks(
        [f"{server.url}/hook"], None, backoff_s=(), allowed_networks=["127.0.0.0/8"]
    )

    await deliver(webhooks)

    assert len(hooks.posts) == 1
    assert webhooks.blocked == 0


def test_a_bad_network_in_the_allow_list_is_a_clear_settings_error() -> None:
    with pytest.raises(ValidationError, match="alert_webhook_allowed_networks"):
        Settings(alert_webhook_allowed_networks=["10.0.0.0/33"])


async def test_one_refused_receiver_does_not_hold_up_another(receiver) -> None:
    hooks, server = receiver
    webhooks = AlertWebhooks(
        ["http://169.254.169.254/latest/meta-data", f"{server.url}/hook"],
        None,
        backoff_s=(),
        allowed_networks=["127.0.0.0/8"],
    )

    await deliver(webhooks)
    await asyncio.sleep(0)

    assert len(hooks.posts) == 1
    assert webhooks.blocked == 1
