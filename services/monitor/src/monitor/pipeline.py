"""Pure pipeline rules: which job state an event means, and which stage latencies and
terminal outcomes a newly recorded state adds to the figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from seoblog_contracts import (
    STAGE_STATE,
    Event,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobState,
    JobSubmitted,
    PostGenerated,
)

TERMINAL_RANK = 4
STATE_RANK: dict[JobState, int] = {
    JobState.QUEUED: 0,
    JobState.CRAWLING: 1,
    JobState.TRANSLATING: 2,
    JobState.GENERATING: 3,
    JobState.COMPLETED: TERMINAL_RANK,
    JobState.FAILED: TERMINAL_RANK,
    JobState.CANCELLED: TERMINAL_RANK,
}


@dataclass(frozen=True)
class Span:
    """A latency: from the moment a job entered `start` to the moment it entered `end`."""

    name: str
    start: JobState
    end: JobState


SPANS: tuple[Span, ...] = (
    Span("queue", JobState.QUEUED, JobState.CRAWLING),
    Span("crawl", JobState.CRAWLING, JobState.TRANSLATING),
    Span("translate", JobState.TRANSLATING, JobState.GENERATING),
    Span("generate", JobState.GENERATING, JobState.COMPLETED),
    Span("end_to_end", JobState.QUEUED, JobState.COMPLETED),
)


@dataclass(frozen=True)
class Transition:
    """A job entering a state at a time; failures also say where and why."""

    job_id: str
    state: JobState
    at: datetime
    stage: str | None = None
    code: str | None = None

    @property
    def rank(self) -> int:
        return STATE_RANK[self.state]


def transition_of(event: Event) -> Transition | None:
    """The job state an event announces, or None for events that move no job (alerts, data)."""
    match event:
        case JobSubmitted():
            return Transition(event.job_id, JobState.QUEUED, event.occurred_at)
        case JobProgress():
            return Transition(event.job_id, STAGE_STATE[event.stage], event.occurred_at)
        case PostGenerated():
            return Transition(event.job_id, JobState.COMPLETED, event.occurred_at)
        case JobFailed():
            return Transition(
                event.job_id, JobState.FAILED, event.occurred_at, str(event.stage), event.code
            )
        case JobCancelled():
            return Transition(event.job_id, JobState.CANCELLED, event.occurred_at)
    return None


@dataclass(frozen=True)
class Observation:
    """What one newly recorded state adds: latencies now measurable, and the job's outcome."""

    latencies: list[tuple[str, float]] = field(default_factory=list)
    finished: JobState | None = None


def observe(state: JobState, times: Mapping[JobState, datetime]) -> Observation:
    """Figures completed by `state`, given every state the job has reached (`state` included).

    A latency is counted by whichever of its two ends is recorded second, so events that
    arrive out of order are measured once. A job finishes with its first terminal state.
    """
    latencies = [
        (span.name, (times[span.end] - times[span.start]).total_seconds())
        for span in SPANS
        if state in (span.start, span.end) and span.start in times and span.end in times
    ]
    terminal_before = any(s.terminal for s in times if s != state)
    return Observation(
        # Negative spans only come from skewed clocks; they would poison the histograms.
        latencies=[(name, seconds) for name, seconds in latencies if seconds >= 0],
        finished=state if state.terminal and not terminal_before else None,
    )
