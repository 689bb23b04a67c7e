"""Pure alert rules: what each reading means for its alert. The monitor's rules cover the same
cases as the shipped Prometheus rules (observability/prometheus/alerts.yml), for users without
Prometheus. Each rule fires when its condition is breached and resolves only once it is
cleared; between the two (a value exactly at its threshold) the alert keeps its state, so it
fires once and resolves once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Severity = Literal["info", "warning", "critical"]

HIGH_FAILURE_RATE = "high_failure_rate"
JOBS_STUCK = "jobs_stuck"
CONSUMER_LAG_GROWING = "consumer_lag_growing"
DLQ_GROWING = "dlq_growing"
LLM_BREAKER_OPEN = "llm_breaker_open"
LLM_COST_OVER_BUDGET = "llm_cost_over_budget"
END_TO_END_LATENCY_HIGH = "end_to_end_latency_high"
SERVICE_DOWN = "service_down"

ALERTS = (
    HIGH_FAILURE_RATE,
    JOBS_STUCK,
    CONSUMER_LAG_GROWING,
    DLQ_GROWING,
    LLM_BREAKER_OPEN,
    LLM_COST_OVER_BUDGET,
    END_TO_END_LATENCY_HIGH,
    SERVICE_DOWN,
)


class AlertAction(StrEnum):
    FIRE = "fire"
    RESOLVE = "resolve"
    KEEP = "keep"


@dataclass(frozen=True)
class Check:
    """One rule's reading in one round. `breached` and `cleared` are never both true."""

    alert: str
    severity: Severity
    breached: bool
    cleared: bool
    summary: str
    value: float | None = None


def act(check: Check, *, active: bool) -> AlertAction:
    if not active and check.breached:
        return AlertAction.FIRE
    if active and check.cleared:
        return AlertAction.RESOLVE
    return AlertAction.KEEP


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _names(names: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# -- high_failure_rate ----------------------------------------------------------------------


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


def describe(jobs: FinishedJobs, window_s: float) -> str:
    return (
        f"{jobs.failed} of {jobs.total} jobs finished in the last {window_s:g} s failed "
        f"({jobs.failure_rate:.0%})"
    )


def failure_rate_check(
    jobs: FinishedJobs, *, threshold: float, min_jobs: int, window_s: float
) -> Check:
    """Fire when enough jobs finished and the failure rate is above the threshold; resolve
    once it is below again."""
    return Check(
        HIGH_FAILURE_RATE,
        "critical",
        breached=jobs.total >= min_jobs and jobs.failure_rate > threshold,
        cleared=jobs.failure_rate < threshold,
        summary=describe(jobs, window_s),
        value=jobs.failure_rate,
    )


def decide(jobs: FinishedJobs, *, active: bool, threshold: float, min_jobs: int) -> AlertAction:
    check = failure_rate_check(jobs, threshold=threshold, min_jobs=min_jobs, window_s=0)
    return act(check, active=active)


# -- jobs_stuck -----------------------------------------------------------------------------


def stuck_check(stuck: Sequence[str], *, after_s: float) -> Check:
    """Unfinished jobs that entered no new state for `after_s`: fire while there is one."""
    summary = (
        f"{_count(len(stuck), 'unfinished job')} entered no new state for {after_s:g} s: "
        f"{_names(stuck)}"
        if stuck
        else f"no unfinished job has been without progress for {after_s:g} s"
    )
    return Check(JOBS_STUCK, "critical", bool(stuck), not stuck, summary, value=float(len(stuck)))


# -- consumer_lag_growing -------------------------------------------------------------------


def less_held(pending: Mapping[str, int], held: Mapping[str, int]) -> dict[str, int]:
    """Each consumer's pending messages beyond what it holds back by design (`held`: the
    monitor's own consumer leaves up to its flush window's events pending)."""
    return {c: max(n - held.get(c, 0), 0) for c, n in pending.items()}


def lag_check(
    pending: Mapping[str, int], before: Mapping[str, int] | None, *, threshold: int, window_s: float
) -> Check:
    """A consumer more than `threshold` messages behind and further behind than `window_s`
    ago fires; it clears once every consumer is under the threshold or catching up (a backlog
    that holds still keeps the alert). Without a sample that old, nothing changes."""
    if before is None:
        return Check(CONSUMER_LAG_GROWING, "warning", False, False, "not enough history yet")
    growing = sorted(c for c, n in pending.items() if n > threshold and n > before.get(c, 0))
    holding = [c for c, n in pending.items() if n > threshold and n >= before.get(c, 0)]
    worst = max((pending[c] for c in growing), default=max(pending.values(), default=0))
    summary = (
        f"{_names(growing)} more than {threshold} messages behind and further behind than "
        f"{window_s:g} s ago (worst {worst})"
        if growing
        else f"no consumer more than {threshold} messages behind and falling further"
    )
    return Check(CONSUMER_LAG_GROWING, "warning", bool(growing), not holding, summary, worst)


# -- dlq_growing ----------------------------------------------------------------------------


def dlq_check(last_seq: int, before: int | None, *, window_s: float) -> Check:
    """Messages dead-lettered in the last `window_s` (the DLQ stream's sequence moved)."""
    if before is None:
        return Check(DLQ_GROWING, "warning", False, False, "not enough history yet")
    added = max(last_seq - before, 0)
    summary = f"{_count(added, 'message')} dead-lettered in the last {window_s:g} s"
    return Check(DLQ_GROWING, "warning", added > 0, added == 0, summary, float(added))


# -- llm_breaker_open -----------------------------------------------------------------------


def breaker_check(states: Mapping[str, float]) -> Check:
    """A service whose LLM breaker is open (1) or half-open (2) fires; all closed clears.
    `states` holds each scraped service's last known state."""
    open_ = sorted(s for s, v in states.items() if v >= 1)
    summary = (
        f"LLM circuit breaker not closed in {_names(open_)}"
        if open_
        else "every LLM circuit breaker is closed"
    )
    return Check(LLM_BREAKER_OPEN, "critical", bool(open_), not open_, summary, float(len(open_)))


# -- llm_cost_over_budget -------------------------------------------------------------------


def cost_check(cost_usd: float, *, budget_usd: float, window_s: float) -> Check:
    return Check(
        LLM_COST_OVER_BUDGET,
        "warning",
        cost_usd > budget_usd,
        cost_usd < budget_usd,
        f"LLM spend {cost_usd:.2f} USD in the last {window_s:g} s, budget {budget_usd:.2f} USD",
        cost_usd,
    )


# -- end_to_end_latency_high ----------------------------------------------------------------


def latency_check(
    p95: float | None, count: int, *, objective_s: float, min_jobs: int, window_s: float
) -> Check:
    """p95 end-to-end latency of the jobs completed in the window above the objective; no
    completed job in the window clears it."""
    summary = (
        f"p95 end-to-end latency {p95:.1f} s over {count} jobs completed in the last "
        f"{window_s:g} s, objective {objective_s:g} s"
        if p95 is not None
        else f"no job completed in the last {window_s:g} s"
    )
    return Check(
        END_TO_END_LATENCY_HIGH,
        "warning",
        p95 is not None and count >= min_jobs and p95 > objective_s,
        p95 is None or p95 < objective_s,
        summary,
        p95,
    )


# -- service_down ---------------------------------------------------------------------------


def down_check(down: Sequence[str], *, after_s: float) -> Check:
    summary = (
        f"{_names(sorted(down))} not scraped for {after_s:g} s"
        if down
        else "every service answers /metrics"
    )
    return Check(SERVICE_DOWN, "critical", bool(down), not down, summary, float(len(down)))
