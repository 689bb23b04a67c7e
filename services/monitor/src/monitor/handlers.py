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


# A batch's events are written at once, then the consumer waits out the rest of this window
# before it pulls again: events arriving meanwhile pile up in the stream and come as the next
# batch. At the pipeline's pace (a few jobs a second, events trickling in one by one) this turns
# a transaction per event into about one a second; figures lag by two windows at most.
FLUSH_S = 1.0
MAX_BATCH = 256
CONSUMER = "monitor-observe_event"
# What the window can leave pending on this consumer by design: a batch waits only while it is
# not full, so at most about two full batches pile up. consumer_lag_growing counts beyond it.
HELD_BACK_MAX = 2 * MAX_BATCH


def register(
    parts: Parts[PgMonitorStore],
    metrics: MonitorMetrics,
    watch: ExperimentWatch | None = None,
    *,
    flush_s: float = FLUSH_S,
) -> None:
    """Consume every subject of the stream (`<root>.>`) on one durable batch consumer, in
    batches a flush window apart (a full batch, a backlog, is pulled again at once)."""
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
        parts.bus.subjects.all,
        CONSUMER,
        AnyEvent,
        observe_events,
        max_batch=MAX_BATCH,
        flush_s=flush_s,
    )
