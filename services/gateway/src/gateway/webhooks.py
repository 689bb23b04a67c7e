"""Signed webhooks: a job with a callback URL gets a delivery for each event it chose
(`callback_events`: completed, failed, cancelled by default; progress on request, coalesced),
kept in PostgreSQL and POSTed by whichever replica claims it, retried with back-off under the
same delivery id. Deliveries go through the shared guarded transport (seoblog_netguard): the
connection goes to the very address the policy checked, so DNS rebinding cannot reach inside."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from seoblog_contracts import stage_event_id, utcnow
from seoblog_netguard import (
    AddressGuard,
    AddressPolicy,
    BadHostname,
    BlockedAddress,
    Resolver,
    guarded_client,
    hostname_problem,
    system_resolver,
)

from .errors import ApiError
from .schemas import DEFAULT_CALLBACK_EVENTS
from .settings import Settings
from .store import PgJobStore

log = logging.getLogger("gateway.webhooks")

SIGNATURE_HEADER = "Seoblog-Signature"
TIMESTAMP_HEADER = "Seoblog-Timestamp"
DELIVERY_HEADER = "Seoblog-Delivery"
TERMINAL = {"completed", "failed", "cancelled"}
PROGRESS = "progress"
# What `last_error` may say about a delivery that got no HTTP answer: no more, so the
# attempts of a callback URL tell nobody which ports answer where.
BLOCKED = "blocked_address"
CONNECTION_FAILED = "connection failed"


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
    """Which addresses a callback may reach: the shared policy (public addresses, IPv4 inside
    IPv6 judged by the IPv4 address), plus GATEWAY_CALLBACK_ALLOWED_NETWORKS."""

    def __init__(self, allowed: list[str], resolver: Resolver = system_resolver) -> None:
        self.guard = AddressGuard(AddressPolicy.allowing(allowed), resolver)

    async def check(self, url: str) -> None:
        """Raise ApiError(422) unless the URL's host is a valid name whose every address is
        permitted. A courtesy at submission: each delivery's connection checks again."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise ApiError(422, "invalid_callback_url", "callback_url must be an http(s) URL.")
        if (problem := hostname_problem(host)) is not None:
            raise ApiError(
                422, "invalid_callback_url", f"callback_url: {BadHostname(host, problem)}"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            await self.guard.addresses(host, port, timeout_s=5)
        except BlockedAddress as exc:
            raise ApiError(
                422,
                "callback_url_blocked",
                f"callback_url points at a private or reserved address ({host}).",
            ) from exc
        except (OSError, ValueError, httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            raise ApiError(
                422,
                "callback_url_unresolvable",
                f"The host {host!r} of callback_url does not resolve.",
            ) from exc


class Webhooks:
    def __init__(
        self, settings: Settings, store: PgJobStore, resolver: Resolver = system_resolver
    ) -> None:
        self.settings = settings
        self.store = store
        self.addresses = Addresses(settings.callback_allowed_networks, resolver)
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
        self._client = guarded_client(
            self.addresses.guard,
            per_origin_connections=4,
            timeout_s=self.settings.webhook_timeout_s,
        )
        self._client.headers["User-Agent"] = "seoblog-webhooks/1"
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
        """Queue what this change of the job owes its callback; idempotent per delivery id.

        An ending (completed, failed, cancelled) is one delivery, if chosen. With `progress`
        chosen, each stage change is one delivery, sent at once; progress within a stage is
        coalesced into one delivery per `webhook_progress_interval_s` window, sent at the
        window's end with the latest progress. Either kind drops the coalesced deliveries of
        the job not yet attempted, which it makes stale."""
        url, state = job.get("callback_url"), job.get("state")
        if not url or not isinstance(state, str):
            return
        chosen = job.get("callback_events") or DEFAULT_CALLBACK_EVENTS
        job_id = job["id"]
        if state in TERMINAL:
            if state in chosen:
                delivery_id = stage_event_id(job_id, f"webhook:{state}")
                payload = _payload(delivery_id, f"job.{state}", job)
                if await self.store.enqueue_webhook(delivery_id, job_id, url, payload):
                    self._wake.set()
            return
        if PROGRESS not in chosen or state == "queued":
            return
        stage_change = stage_event_id(job_id, f"webhook:progress:{state}")
        payload = _payload(stage_change, "job.progress", job)
        if await self.store.enqueue_webhook(stage_change, job_id, url, payload):
            self._wake.set()
            return
        interval = self.settings.webhook_progress_interval_s
        window = int(time.time() // interval)
        coalesced = stage_event_id(job_id, f"webhook:progress:{state}", window)
        due = datetime.fromtimestamp((window + 1) * interval, UTC)
        payload = _payload(coalesced, "job.progress", job)
        await self.store.coalesce_webhook(coalesced, job_id, url, payload, due)

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
        try:
            response = await self._client.post(
                url,
                content=body,
                follow_redirects=False,
                headers={
                    "Content-Type": "application/json",
                    DELIVERY_HEADER: delivery_id,
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(self.secret, timestamp, body),
                },
            )
            await response.aclose()
            if 200 <= response.status_code < 300:
                await self.store.webhook_done(delivery_id)
                self.stats["delivered"] += 1
                log.info("webhook delivered", extra={"delivery": delivery_id})
                return
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = _failure(exc)
            log.info(
                "webhook connection failed",
                extra={"delivery": delivery_id, "detail": f"{type(exc).__name__}: {exc}"[:300]},
            )
        backoff = self.settings.webhook_backoff_s
        attempt = delivery["attempts"]
        # A refused address is refused again: given up at once, never retried.
        delay = backoff[attempt] if attempt < len(backoff) and error != BLOCKED else None
        await self.store.webhook_retry(delivery_id, delay, error)
        self.stats["retried" if delay is not None else "failed"] += 1
        log.warning(
            "webhook not delivered",
            extra={"delivery": delivery_id, "error": error, "retry_in_s": delay},
        )


def _payload(delivery_id: str, kind: str, job: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "type": kind,
        "created_at": utcnow().isoformat(),
        "data": {"job": job},
    }


def _failure(exc: BaseException) -> str:
    """`last_error` for a delivery without an HTTP answer: blocked, or one generic class (not
    refused, reset, timed out or unresolvable, which would map ports for a caller)."""
    if any(isinstance(cause, BlockedAddress) for cause in _causes(exc)):
        return BLOCKED
    return CONNECTION_FAILED


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
