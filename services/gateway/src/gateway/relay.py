"""The submit relay: a submitted job is queued once its row is written, and its event reaches
the stream even when the publish failed or timed out: confirmations are recorded in batches,
and whatever stays unconfirmed is published again under the same event id (Nats-Msg-Id)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from seoblog_contracts import JobSpec, JobSubmitted
from seoblog_runtime import Bus

from .settings import Settings
from .store import PgJobStore

log = logging.getLogger("gateway.relay")


class Relay:
    def __init__(self, settings: Settings, store: PgJobStore, bus: Bus) -> None:
        self.settings, self.store, self.bus = settings, store, bus
        self._confirmed: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.republished = 0  # for /metrics and tests

    def confirmed(self, job_id: str) -> None:
        """The stream acknowledged this job's event (recorded with the next sweep)."""
        self._confirmed.append(job_id)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.relay_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.warning("relay sweep failed; will retry", exc_info=True)

    async def _flush(self) -> None:
        if self._confirmed:
            done, self._confirmed = self._confirmed, []
            try:
                await self.store.mark_published(done)
            except BaseException:
                self._confirmed += done
                raise

    async def sweep(self) -> int:
        """Record confirmations, then publish overdue jobs again; how many were published."""
        await self._flush()
        rows = await self.store.claim_unpublished(100, self.settings.relay_after_s)
        published: list[str] = []
        for row in rows:
            event = JobSubmitted(
                event_id=row["event_id"],
                job_id=row["job_id"],
                occurred_at=row["at"],
                spec=JobSpec.model_validate_json(row["spec"]),
            )
            try:
                await asyncio.wait_for(self.bus.publish(event), self.settings.publish_timeout_s)
            except Exception:
                log.warning("job still not queued; will retry", extra={"job_id": event.job_id})
                break  # the bus is down: the rest waits for the next lease
            published.append(event.job_id)
        if published:
            self.republished += len(published)
            await self.store.mark_published(published)
            log.info("unconfirmed jobs published again", extra={"count": len(published)})
        return len(published)
