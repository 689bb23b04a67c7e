"""Alert webhooks (MONITOR_ALERT_WEBHOOKS): each fired or resolved alert, as its event's JSON,
POSTed to every configured URL by the replica that announced it, signed like the gateway's
job webhooks and retried with back-off under one delivery id (the event id).

Deliveries go through the shared guarded transport (seoblog_netguard), as the gateway's: public
addresses only, checked in the connection itself (no DNS rebinding between check and connect),
plus the networks MONITOR_ALERT_WEBHOOK_ALLOWED_NETWORKS lets through (an in-house receiver)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
from pydantic import AnyHttpUrl

from seoblog_contracts import AlertFired, AlertResolved
from seoblog_netguard import (
    AddressGuard,
    AddressPolicy,
    BlockedAddress,
    Resolver,
    guarded_client,
    literal_address,
    system_resolver,
)

log = logging.getLogger("seoblog.monitor.webhooks")

SIGNATURE_HEADER = "Seoblog-Signature"
TIMESTAMP_HEADER = "Seoblog-Timestamp"
DELIVERY_HEADER = "Seoblog-Delivery"
EVENT_HEADER = "Seoblog-Event"
BACKOFF_S = (1.0, 5.0, 30.0)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class AlertWebhooks:
    def __init__(
        self,
        urls: Sequence[AnyHttpUrl | str],
        secret: str | None,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        *,
        allowed_networks: Sequence[str] = (),
        resolver: Resolver = system_resolver,
        timeout_s: float = 10,
    ) -> None:
        self.urls = [str(url) for url in urls]
        self.secret, self.backoff_s = secret, backoff_s
        self.guard = AddressGuard(AddressPolicy.allowing(allowed_networks), resolver)
        self.timeout_s = timeout_s
        self.blocked = 0  # deliveries the address guard refused
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for url in self.urls:
            self._warn_if_refused(url)
        if self.urls:
            # Redirects are not followed (guarded_client's default): a 3xx is a failure.
            self._client = guarded_client(
                self.guard, per_origin_connections=2, timeout_s=self.timeout_s
            )
            self._client.headers["User-Agent"] = "seoblog-alerts/1"

    def _warn_if_refused(self, url: str) -> None:
        """Say at start-up what every delivery to a literal private address would meet."""
        host = urlsplit(url).hostname or ""
        try:
            ip = literal_address(host)
        except ValueError:
            ip = None
        reason = None if ip is None else self.guard.policy.refusal(ip)
        if reason is not None:
            log.warning(
                "alert webhook host %s is a %s address: its deliveries are refused unless "
                "MONITOR_ALERT_WEBHOOK_ALLOWED_NETWORKS includes it",
                host,
                reason,
            )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def send(self, event: AlertFired | AlertResolved) -> None:
        """Deliver in the background: the evaluation does not wait for receivers."""
        if self._client is None:
            return
        for url in self.urls:
            task = asyncio.create_task(self._deliver(self._client, url, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, client: httpx.AsyncClient, url: str, event: AlertFired | AlertResolved
    ) -> None:
        body = event.model_dump_json().encode()
        for attempt in range(len(self.backoff_s) + 1):
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                DELIVERY_HEADER: event.event_id,
                EVENT_HEADER: event.type,
                TIMESTAMP_HEADER: str(timestamp),
            }
            if self.secret:
                headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                if _blocked(exc):
                    # Not retried: the address will not become public by waiting.
                    self.blocked += 1
                    log.warning(
                        "alert webhook refused: its host is a private or reserved address",
                        extra={"alert": event.alert, "error": str(exc)},
                    )
                    return
                error = type(exc).__name__
            log.warning(
                "alert webhook failed",
                extra={"alert": event.alert, "attempt": attempt + 1, "error": error},
            )
            if attempt < len(self.backoff_s):
                await asyncio.sleep(self.backoff_s[attempt])


def _blocked(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, BlockedAddress):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
