"""Pure rules of the job projection: which event moves a job to which state."""

from __future__ import annotations

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

RANK = {
    JobState.QUEUED: 0,
    JobState.CRAWLING: 1,
    JobState.TRANSLATING: 2,
    JobState.GENERATING: 3,
    JobState.COMPLETED: 4,
    JobState.FAILED: 4,
    JobState.CANCELLED: 4,
}


def state_of(event: Event) -> JobState | None:
    """The state an event announces, or None for events that do not move a job."""
    match event:
        case JobSubmitted():
            return JobState.QUEUED
        case JobProgress(stage=stage):
            return STAGE_STATE[stage]
        case PostGenerated():
            return JobState.COMPLETED
        case JobFailed():
            return JobState.FAILED
        case JobCancelled():
            return JobState.CANCELLED
    return None


def advance(current: JobState, announced: JobState) -> JobState | None:
    """The new state, or None to keep the current one.

    Events arrive at least once and out of order across consumers, so a job only moves
    forward, and a finished job (completed, failed, cancelled) never changes again.
    """
    if current.terminal or announced == current:
        return None
    if RANK[announced] > RANK[current]:
        return announced
    return None
