"""Pure alert rules: when the high failure rate alert fires and resolves."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HIGH_FAILURE_RATE = "high_failure_rate"


@dataclass(frozen=True)
class FinishedJobs:
    """Jobs that finished in the alert window, by outcome (cancelled jobs are not counted)."""

    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.failed

    @property
    def failure_rate(self) -> float:
        return self.failed / self.total if self.total else 0.0


class AlertAction(StrEnum):
    FIRE = "fire"
    RESOLVE = "resolve"
    KEEP = "keep"


def decide(jobs: FinishedJobs, *, active: bool, threshold: float, min_jobs: int) -> AlertAction:
    """Fire when enough jobs finished and the failure rate is above the threshold; resolve
    once it is below again. A rate exactly at the threshold keeps the current state."""
    if not active and jobs.total >= min_jobs and jobs.failure_rate > threshold:
        return AlertAction.FIRE
    if active and jobs.failure_rate < threshold:
        return AlertAction.RESOLVE
    return AlertAction.KEEP


def describe(jobs: FinishedJobs, window_s: float) -> str:
    return (
        f"{jobs.failed} of {jobs.total} jobs finished in the last {window_s:g} s failed "
        f"({jobs.failure_rate:.0%})"
    )
