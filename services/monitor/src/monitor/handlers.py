"""The monitor's one subscriber: pipeline events in batches, folded into job states, LLM cost
and per-minute rollups (one transaction per batch) and turned into figures."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from seoblog_contracts import (
    AlertFired,
    AlertResolved,
    ExperimentChanged,
    ExperimentRamped,
    ExperimentRolledBack,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSubmitted,
    PageCrawled,
    PostGenerated,
    TextTranslated,
)
from seoblog_runtime import Parts

from .experiments import ExperimentWatch
from .metrics import MonitorMetrics
from .pipeline import RecentIds, cost_of, earliest_per_state, transition_of
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
    | AlertResolved
    | ExperimentChanged
    | ExperimentRolledBack
    | ExperimentRamped,
    Field(discriminator="type"),
]


def register(
    parts: Parts[PgMonitorStore], metrics: MonitorMetrics, watch: ExperimentWatch | None = None
) -> None:
    """Consume every subject of the stream (`<root>.>`) on one durable batch consumer."""
    store = parts.store
    recent = RecentIds()

    async def observe_events(events: list[AnyEvent]) -> None:
        transitions = earliest_per_state(
            t for t in (transition_of(event) for event in events) if t is not None
        )
        costs = [c for c in (cost_of(event) for event in events) if c is not None]
        for transition, observation in await store.record_batch(transitions, costs):
            metrics.observe(transition, observation)
        if watch is not None:
            await watch.observe(events)
        for event in events:
            if recent.add(event.event_id):
                metrics.events.labels(event.type).inc()

    parts.bus.consume_batch(
        parts.bus.subjects.all, "monitor-observe_event", AnyEvent, observe_events
    )
