"""The monitor's one subscriber: every pipeline event, recorded once, turned into figures."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from seoblog_contracts import (
    AlertFired,
    AlertResolved,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSubmitted,
    PageCrawled,
    PostGenerated,
    TextTranslated,
)
from seoblog_runtime import Parts

from .metrics import MonitorMetrics
from .pipeline import observe, transition_of
from .store import PgMonitorStore

AnyEvent = Annotated[
    JobSubmitted
    | PageCrawled
    | TextTranslated
    | PostGenerated
    | JobProgress
    | JobFailed
    | JobCancelled
    | AlertFired
    | AlertResolved,
    Field(discriminator="type"),
]


def register(parts: Parts[PgMonitorStore], metrics: MonitorMetrics) -> None:
    """Consume every subject of the stream (`<root>.>`) on one durable consumer."""
    store = parts.store

    async def observe_event(event: AnyEvent) -> None:
        transition = transition_of(event)
        recorded = await store.record(event.event_id, event.type, transition)
        if not recorded.new_event:
            return
        metrics.events.labels(event.type).inc()
        if transition is not None and recorded.new_state:
            metrics.observe(transition, observe(transition.state, recorded.times))

    parts.bus.consume(parts.bus.subjects.all, "monitor-observe_event", AnyEvent, observe_event)
