"""Signed completion webhooks: a job that ends (completed, failed, cancelled) with a callback URL
gets one delivery, kept in PostgreSQL and POSTed by whichever replica claims it, retried with
back-off under the same delivery id. Callback URLs must not reach private addresses."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from seoblog_contracts import stage_event_id, utcnow

from .errors import ApiError
from .settings import Settings
from .store import PgJobStore

log = logging.getLogger("gateway.webhooks")

SIGNATURE_HEADER = "Seoblog-Signature"
TIMESTAMP_HEADER = "Seoblog-Timestamp"
DELIVERY_HEADER = "Seoblog-Delivery"
TERMINAL = {"completed", "failed", "cancelled"}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute the signature and refuse stale timestamps."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Addresses:
    """Which addresses a callback may reach: public ones, plus the allowed networks."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed]

    def permitted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed):
            return True
        return ip.is_global and not ip.is_multicast

    async def check(self, url: str) -> None:
        """Raise ApiError(422) unless every address the URL's host resolves to is permitted."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise ApiError(422, "invalid_callback_url", "callback_url must be an http(s) URL.")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port), timeout=5
            )
        except (OSError, TimeoutError) as exc:
            raise ApiError(
                422,
                "callback_url_unresolvable",
                f"The host {host!r} of callback_url does not resolve.",
            ) from exc
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(self.permitted(a) for a in addresses):
            raise ApiError(
                422,
                "callback_url_blocked",
                f"callback_url points at a private or reserved address ({host}).",
            )


class Webhooks:
    def __init__(self, settings: Settings, store: PgJobStore) -> None:
        self.settings = settings
        self.store = store
        self.addresses = Addresses(settings.callback_allowed_networks)
        self.secret = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.stats = {"delivered": 0, "retried": 0, "failed": 0}

    async def start(self) -> None:
        configured = self.settings.webhook_secret
        if configured is not None and configured.get_secret_value():
            self.secret = configured.get_secret_value()
        else:
            self.secret = await self.store.secret(
                "webhook_secret", "whsec_" + secrets.token_urlsafe(32)
            )
        self._client = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_s,
            follow_redirects=False,
            headers={"User-Agent": "seoblog-webhooks/1"},
        )
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def enqueue(self, job: dict[str, Any]) -> None:
        """One delivery per finished job with a callback URL; idempotent."""
        url, state = job.get("callback_url"), job.get("state")
        if not url or state not in TERMINAL:
            return
        delivery_id = stage_event_id(job["id"], f"webhook:{state}")
        payload = {
            "id": delivery_id,
            "type": f"job.{state}",
            "created_at": utcnow().isoformat(),
            "data": {"job": job},
        }
        if await self.store.enqueue_webhook(delivery_id, job["id"], url, payload):
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                due = await self.store.claim_webhooks(20, self.settings.webhook_timeout_s + 5)
                if due:
                    await asyncio.gather(*(self._deliver(d) for d in due))
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("webhook round failed", exc_info=True)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        assert self._client is not None
        delivery_id, url = delivery["delivery_id"], delivery["url"]
        body = json.dumps(json.loads(delivery["payload"]), separators=(",", ":")).encode()
        timestamp = int(time.time())
        error = ""
        try:
            await self.addresses.check(url)  # again: DNS may have changed since submission
            response = await self._client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    DELIVERY_HEADER: delivery_id,
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(self.secret, timestamp, body),
                },
            )
            if 200 <= response.status_code < 300:
                await self.store.webhook_done(delivery_id)
                self.stats["delivered"] += 1
                log.info("webhook delivered", extra={"delivery": delivery_id})
                return
            error = f"HTTP {response.status_code}"
        except ApiError as exc:
            error = f"{exc.code}: {exc.message}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        backoff = self.settings.webhook_backoff_s
        attempt = delivery["attempts"]
        delay = backoff[attempt] if attempt < len(backoff) else None
        await self.store.webhook_retry(delivery_id, delay, error)
        self.stats["retried" if delay is not None else "failed"] += 1
        log.warning(
            "webhook not delivered",
            extra={"delivery": delivery_id, "error": error, "retry_in_s": delay},
        )
