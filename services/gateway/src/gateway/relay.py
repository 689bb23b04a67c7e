"""The submit relay: a submitted job is queued once its row is written, and its event reaches
the stream even when the publish failed or timed out, or the gateway died in between: a job
still queued when its publish_due passes is published again under the same event id
(Nats-Msg-Id, so the stream keeps one copy) unless this replica saw the stream confirm it.
A confirmed submit costs no extra write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from seoblog_contracts import JobSpec, JobSubmitted
from seoblog_runtime import Bus

from .settings import Settings
from .store import PgJobStore

log = logging.getLogger("gateway.relay")


class Relay:
    def __init__(self, settings: Settings, store: PgJobStore, bus: Bus) -> None:
        self.settings, self.store, self.bus = settings, store, bus
        self._confirmed: dict[str, float] = {}  # job id: when the stream acknowledged it
        self._task: asyncio.Task[None] | None = None
        self.republished = 0  # for /metrics and tests

    def confirmed(self, job_id: str) -> None:
        """The stream acknowledged this job's event."""
        self._confirmed[job_id] = time.monotonic()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.relay_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.warning("relay sweep failed; will retry", exc_info=True)

    async def sweep(self) -> int:
        """Publish overdue queued jobs again; how many were published."""
        # A confirmation matters until its job is due (and a lease after): then it is cleared.
        horizon = time.monotonic() - 2 * self.settings.relay_after_s - 60
        for job_id in [j for j, at in self._confirmed.items() if at < horizon]:
            del self._confirmed[job_id]
        rows = await self.store.claim_unpublished(100, self.settings.relay_after_s)
        done = [r["job_id"] for r in rows if self._confirmed.pop(r["job_id"], None) is not None]
        published = 0
        for row in rows:
            if row["job_id"] in done:
                continue  # confirmed here; just still waiting for the crawler
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
                break  # the bus is down: the rest waits for its lease to lapse
            done.append(event.job_id)
            published += 1
        if done:
            await self.store.mark_published(done)
        if published:
            self.republished += published
            log.info("unconfirmed jobs published again", extra={"count": published})
        return published
