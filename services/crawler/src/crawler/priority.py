"""Crawl slots granted by priority: high before normal before low, with aging so that a
waiting lower priority is served after it has been passed over `starvation_limit` times.

The three durable consumers pull their own messages; every handler passes through these
slots, which also bound how many pages the crawler works on at once."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from seoblog_contracts import Priority

from .metrics import CrawlerMetrics

_ORDER = (Priority.HIGH, Priority.NORMAL, Priority.LOW)


class PrioritySlots:
    def __init__(
        self,
        capacity: int,
        starvation_limit: int = 4,
        metrics: CrawlerMetrics | None = None,
    ) -> None:
        if capacity < 1 or starvation_limit < 1:
            raise ValueError("capacity and starvation_limit must be at least 1")
        self.capacity = capacity
        self.starvation_limit = starvation_limit
        self.metrics = metrics or CrawlerMetrics()
        self.in_use = 0
        self.grants: deque[Priority] = deque(maxlen=1000)  # recent grant order, for insight
        self._waiting: dict[Priority, deque[asyncio.Future[None]]] = {p: deque() for p in _ORDER}
        self._passed_over: dict[Priority, int] = dict.fromkeys(_ORDER, 0)

    def waiting(self, priority: Priority) -> int:
        return sum(not f.done() for f in self._waiting[priority])

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        started = time.monotonic()
        await self._acquire(priority)
        self.metrics.slot_wait.labels(priority.value).observe(time.monotonic() - started)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if self.in_use < self.capacity and not any(self._waiting.values()):
            self.in_use += 1
            self.grants.append(priority)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[priority].append(future)
        self._grant()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as we were cancelled: hand the slot on
            else:
                self._discard(priority, future)
            raise

    def _release(self) -> None:
        self.in_use -= 1
        self._grant()

    def _grant(self) -> None:
        while self.in_use < self.capacity:
            chosen = self._next()
            if chosen is None:
                return
            future = self._waiting[chosen].popleft()
            self.in_use += 1
            self.grants.append(chosen)
            future.set_result(None)

    def _next(self) -> Priority | None:
        for queue in self._waiting.values():
            while queue and queue[0].done():  # cancelled waiters
                queue.popleft()
        ready = [p for p in _ORDER if self._waiting[p]]
        if not ready:
            return None
        # The most passed-over of those that have waited too long, else the highest.
        starved = [p for p in ready if self._passed_over[p] >= self.starvation_limit]
        chosen = max(starved, key=lambda p: self._passed_over[p]) if starved else ready[0]
        for p in ready:
            self._passed_over[p] = 0 if p == chosen else self._passed_over[p] + 1
        return chosen

    def _discard(self, priority: Priority, future: asyncio.Future[None]) -> None:
        with suppress(ValueError):
            self._waiting[priority].remove(future)
