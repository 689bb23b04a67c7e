"""Live job updates: the replica that projects an event publishes the job's new snapshot on
core NATS (`<root>.live.<job_id>`, outside the stream), and every replica hands it to the SSE
and WebSocket clients it holds for that job. `<root>.live.keys` is not a job: it carries API
key revocations to every replica's authenticator (auth.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from seoblog_runtime import Bus

log = logging.getLogger("gateway.live")

Snapshot = dict[str, Any]
CLOSED: Snapshot = {}  # sentinel put on every queue when the gateway stops
REVOKED: Snapshot = {"type": "revoked"}  # sentinel: the stream's API key was revoked
REVOCATIONS = "keys"  # the live subject token of key revocations (never a job id)
_REPLICA_HEADER = "Seoblog-Replica"  # which replica published a snapshot


class LiveHub:
    def __init__(self, bus: Bus, on_snapshot: Callable[[Snapshot], None] | None = None) -> None:
        self.bus = bus
        self.on_snapshot = on_snapshot
        self.replica = uuid.uuid4().hex  # its own snapshots come back from NATS: skipped
        self.echoes_skipped = 0  # for tests
        self.prefix = f"{bus.subjects.root}.live"
        self._listeners: dict[str, set[asyncio.Queue[Snapshot]]] = {}
        self._sub: Subscription | None = None
        self.connections = 0  # open SSE streams and WebSockets, for /metrics and tests

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(f"{self.prefix}.*", cb=self._on_message)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        self.close_all()

    def close_all(self) -> None:
        """End every stream and socket (the server is stopping; clients reconnect elsewhere
        and resume with Last-Event-ID), so open streams do not hold up a graceful shutdown."""
        for queues in self._listeners.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(CLOSED)

    async def publish(self, snapshot: Snapshot) -> None:
        """Tell every replica's listeners about a job's new state (best effort: a client
        that misses one still gets the next, and reconnects with Last-Event-ID). This
        replica's own listeners get it at once; the copy NATS sends back is not parsed
        again (the projecting replica holds the job in its cache already)."""
        self._hand_over(snapshot["id"], snapshot)
        try:
            await self.bus.nc.publish(
                f"{self.prefix}.{snapshot['id']}",
                json.dumps(snapshot, default=str).encode(),
                headers={_REPLICA_HEADER: self.replica},
            )
        except Exception:
            log.warning("live update not published", exc_info=True)

    async def _on_message(self, msg: Msg) -> None:
        job_id = msg.subject.rsplit(".", 1)[-1]
        if job_id == REVOCATIONS:
            return
        if msg.headers and msg.headers.get(_REPLICA_HEADER) == self.replica:
            self.echoes_skipped += 1
            return
        queues = self._listeners.get(job_id)
        if not queues and self.on_snapshot is None:
            return
        snapshot = json.loads(msg.data)
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot)
        self._hand_over(job_id, snapshot)

    def _hand_over(self, job_id: str, snapshot: Snapshot) -> None:
        queues = self._listeners.get(job_id)
        for queue in list(queues or ()):
            if queue.full():  # a slow client only needs the newest state
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(snapshot)

    @contextlib.asynccontextmanager
    async def listen(self, queue: asyncio.Queue[Snapshot], *job_ids: str) -> AsyncIterator[None]:
        self.follow(queue, *job_ids)
        self.connections += 1
        try:
            yield
        finally:
            self.connections -= 1
            self.unfollow(queue, *self.following(queue))

    def follow(self, queue: asyncio.Queue[Snapshot], *job_ids: str) -> None:
        for job_id in job_ids:
            self._listeners.setdefault(job_id, set()).add(queue)

    def unfollow(self, queue: asyncio.Queue[Snapshot], *job_ids: str) -> None:
        for job_id in job_ids:
            queues = self._listeners.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._listeners[job_id]

    def following(self, queue: asyncio.Queue[Snapshot]) -> list[str]:
        return [job_id for job_id, queues in self._listeners.items() if queue in queues]

    @property
    def listeners(self) -> int:
        return sum(len(q) for q in self._listeners.values())
