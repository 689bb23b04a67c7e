"""Guardrails and ramp steps: pure decisions over a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import Experiment, Guardrail
from .report import Report


@dataclass(frozen=True)
class Breach:
    variant: str
    rule: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def _broken(rule: Guardrail, control: float, variant: float) -> bool:
    if rule.max_difference is not None:
        return variant - control > rule.max_difference
    if rule.min_difference is not None:
        return variant - control < rule.min_difference
    if control <= 0:  # a ratio to nothing says nothing (offline posts cost 0)
        return False
    if rule.max_ratio is not None:
        return variant / control > rule.max_ratio
    assert rule.min_ratio is not None
    return variant / control < rule.min_ratio


def breaches(experiment: Experiment, report: Report) -> list[Breach]:
    """Every guardrail a variant breaks, where both it and the control have the rule's
    minimum sample of the figure."""
    control = report.arm(experiment.control)
    if control is None:
        return []
    found = []
    for variant in experiment.variants:
        arm = report.arm(variant.name)
        if arm is None:
            continue
        for rule in experiment.guardrails:
            base, mine = control.metrics[rule.metric], arm.metrics[rule.metric]
            if base.value is None or mine.value is None:
                continue
            if base.n < rule.min_sample or mine.n < rule.min_sample:
                continue
            if _broken(rule, base.value, mine.value):
                figures = {
                    "metric": rule.metric,
                    "rule": rule.describe(),
                    "control": round(base.value, 6),
                    "variant_value": round(mine.value, 6),
                    "control_n": base.n,
                    "variant_n": mine.n,
                    "difference": mine.difference,
                    "ci_low": mine.ci_low,
                    "ci_high": mine.ci_high,
                    "p_value": mine.p_value,
                }
                reason = (
                    f"{variant.name}: {rule.metric} {mine.value:.4g} vs control "
                    f"{base.value:.4g} breaks '{rule.describe()}' (n {mine.n} and {base.n})"
                )
                found.append(Breach(variant.name, rule.describe(), reason, figures))
    return found


def step_holds(
    experiment: Experiment, report: Report, finished_in_step: int, now: datetime
) -> bool:
    """The ramp step now in force has been held long enough, on enough jobs, with no breach."""
    ramp = experiment.ramp
    if ramp is None or experiment.status != "running" or experiment.step is None:
        return False
    if experiment.step >= len(ramp.steps) - 1 and ramp.steps[-1] < 100:
        return False  # the last step short of 100 % stays until someone promotes
    if experiment.step_started_at is None:
        return False
    if (now - experiment.step_started_at).total_seconds() < ramp.min_seconds:
        return False
    return finished_in_step >= ramp.min_jobs and not breaches(experiment, report)
