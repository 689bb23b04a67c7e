"""The comparison report: per arm (control and variants) the figures of its finished jobs,
and per variant each figure's difference from the control with a 95 % confidence interval and
a test of significance (scipy: Welch's t-test for means, a bootstrap for quantiles, Fisher's
exact test with a Wald interval for rates)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import numpy as np

from .models import METRICS, Experiment

ALPHA = 0.05


@dataclass(frozen=True)
class JobFigures:
    """One finished job of an experiment, as a read model knows it."""

    variant: str
    outcome: str  # completed | failed | cancelled
    failure_code: str | None = None
    e2e_s: float | None = None
    stages_s: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    tokens: int | None = None
    cost_usd: float | None = None
    revised: bool | None = None


class MetricResult(BaseModel):
    value: float | None = Field(description="the arm's figure")
    n: int = Field(description="jobs it is computed from")
    difference: float | None = Field(None, description="variant - control")
    ci_low: float | None = Field(None, description="95 % interval of the difference")
    ci_high: float | None = None
    p_value: float | None = None
    significant: bool = False


class VariantReport(BaseModel):
    variant: str
    share: float
    jobs: int
    completed: int
    failed: int
    failures_by_code: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, MetricResult]


class Report(BaseModel):
    control: str
    variants: list[VariantReport] = Field(description="the control first, then each variant")

    def arm(self, name: str) -> VariantReport | None:
        return next((v for v in self.variants if v.variant == name), None)


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _clean(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def compare_means(control: Sequence[float], variant: Sequence[float]) -> MetricResult:
    """Welch's t-test of variant - control."""
    import numpy as np  # numpy and scipy take 2 s to import: loaded by reports only
    from scipy import stats

    result = MetricResult(value=float(np.mean(variant)) if variant else None, n=len(variant))
    if len(control) < 2 or len(variant) < 2:
        return result
    difference = float(np.mean(variant) - np.mean(control))
    result.difference = round(difference, 6)
    if np.ptp(control) == 0 and np.ptp(variant) == 0:  # no spread: the difference is exact
        result.ci_low = result.ci_high = result.difference
        result.p_value = 1.0 if difference == 0 else 0.0
        result.significant = difference != 0
        return result
    test = stats.ttest_ind(variant, control, equal_var=False)
    interval = test.confidence_interval(1 - ALPHA)
    result.ci_low, result.ci_high = _clean(interval.low), _clean(interval.high)
    result.p_value = _clean(test.pvalue)
    result.significant = result.p_value is not None and result.p_value < ALPHA
    return result


def compare_quantiles(
    control: Sequence[float], variant: Sequence[float], q: float, *, interval: bool = True
) -> MetricResult:
    """A two-sample bootstrap of the difference of the q-quantiles (significant when the
    interval leaves out 0). Without `interval`, the values and the difference only (the
    bootstrap is most of a report's cost)."""
    import numpy as np  # numpy and scipy take 2 s to import: loaded by reports only
    from scipy import stats

    value = float(np.quantile(variant, q)) if variant else None
    result = MetricResult(value=value, n=len(variant))
    if len(control) < 2 or len(variant) < 2:
        return result
    if not interval:
        result.difference = round(float(np.quantile(variant, q) - np.quantile(control, q)), 6)
        return result

    def statistic(v: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.quantile(v, q, axis=axis) - np.quantile(c, q, axis=axis))

    result.difference = round(float(np.quantile(variant, q) - np.quantile(control, q)), 6)
    boot = stats.bootstrap(
        (np.asarray(variant), np.asarray(control)),
        statistic,
        n_resamples=999,
        confidence_level=1 - ALPHA,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    result.ci_low = _clean(boot.confidence_interval.low)
    result.ci_high = _clean(boot.confidence_interval.high)
    if result.ci_low is not None and result.ci_high is not None:
        result.significant = result.ci_low > 0 or result.ci_high < 0
    return result


def compare_rates(c_hits: int, c_n: int, v_hits: int, v_n: int) -> MetricResult:
    """Fisher's exact test of two proportions, with the Wald interval of their difference."""
    from scipy import stats

    result = MetricResult(value=v_hits / v_n if v_n else None, n=v_n)
    if not c_n or not v_n:
        return result
    p_c, p_v = c_hits / c_n, v_hits / v_n
    difference = p_v - p_c
    result.difference = round(difference, 6)
    spread = math.sqrt(p_c * (1 - p_c) / c_n + p_v * (1 - p_v) / v_n)
    z = float(stats.norm.ppf(1 - ALPHA / 2))
    result.ci_low, result.ci_high = (
        round(difference - z * spread, 6),
        round(difference + z * spread, 6),
    )
    test = stats.fisher_exact([[v_hits, v_n - v_hits], [c_hits, c_n - c_hits]])
    result.p_value = _clean(float(test.pvalue))
    result.significant = result.p_value is not None and result.p_value < ALPHA
    return result


_MEANS: dict[str, Callable[[JobFigures], float | None]] = {
    "seo_score": lambda j: j.score,
    "tokens_per_post": lambda j: None if j.tokens is None else float(j.tokens),
    "cost_per_post_usd": lambda j: j.cost_usd,
}
_QUANTILES: dict[str, tuple[Callable[[JobFigures], float | None], float]] = {
    "latency_e2e_p50_s": (lambda j: j.e2e_s, 0.5),
    "latency_e2e_p95_s": (lambda j: j.e2e_s, 0.95),
    "latency_crawl_p50_s": (lambda j: j.stages_s.get("crawl"), 0.5),
    "latency_translate_p50_s": (lambda j: j.stages_s.get("translate"), 0.5),
    "latency_generate_p50_s": (lambda j: j.stages_s.get("generate"), 0.5),
    "latency_crawl_p95_s": (lambda j: j.stages_s.get("crawl"), 0.95),
    "latency_translate_p95_s": (lambda j: j.stages_s.get("translate"), 0.95),
    "latency_generate_p95_s": (lambda j: j.stages_s.get("generate"), 0.95),
}


def _metrics(
    arm: list[JobFigures], control: list[JobFigures] | None, intervals: bool
) -> dict[str, MetricResult]:
    base = arm if control is None else control
    done = [j for j in arm if j.outcome == "completed"]
    base_done = [j for j in base if j.outcome == "completed"]
    ended = [j for j in arm if j.outcome in ("completed", "failed")]
    base_ended = [j for j in base if j.outcome in ("completed", "failed")]
    out: dict[str, MetricResult] = {}
    out["failure_rate"] = compare_rates(
        sum(j.outcome == "failed" for j in base_ended),
        len(base_ended),
        sum(j.outcome == "failed" for j in ended),
        len(ended),
    )
    for name, pick in _MEANS.items():
        out[name] = compare_means(
            _finite([pick(j) for j in base_done]), _finite([pick(j) for j in done])
        )
    for name, (pick, q) in _QUANTILES.items():
        out[name] = compare_quantiles(
            _finite([pick(j) for j in base_done]),
            _finite([pick(j) for j in done]),
            q,
            interval=intervals and control is not None,
        )
    revised = [j for j in done if j.revised is not None]
    base_revised = [j for j in base_done if j.revised is not None]
    out["revision_rate"] = compare_rates(
        sum(bool(j.revised) for j in base_revised),
        len(base_revised),
        sum(bool(j.revised) for j in revised),
        len(revised),
    )
    if control is None:  # the control against itself: figures only
        out = {k: MetricResult(value=m.value, n=m.n) for k, m in out.items()}
    return {name: out[name] for name in METRICS}


def build_report(
    experiment: Experiment, figures: Sequence[JobFigures], *, intervals: bool = True
) -> Report:
    """The control and every variant, each variant compared with the control. Without
    `intervals` the percentiles get no bootstrap interval (what guardrails need is cheap)."""
    by_arm: dict[str, list[JobFigures]] = {arm: [] for arm in experiment.arms()}
    for job in figures:
        if job.variant in by_arm:
            by_arm[job.variant].append(job)
    control = by_arm[experiment.control]
    shares = {v.name: v.share for v in experiment.variants}
    shares[experiment.control] = round(max(0.0, 100 - sum(shares.values())), 4)
    if experiment.status == "promoted":
        shares = {arm: 100.0 if arm == experiment.promoted_variant else 0.0 for arm in by_arm}
    elif experiment.status in ("paused", "rolled_back"):
        shares = dict.fromkeys(by_arm, 0.0)
    arms = []
    for arm, jobs in by_arm.items():
        codes: dict[str, int] = {}
        for job in jobs:
            if job.outcome == "failed":
                codes[job.failure_code or "unknown"] = (
                    codes.get(job.failure_code or "unknown", 0) + 1
                )
        arms.append(
            VariantReport(
                variant=arm,
                share=shares[arm],
                jobs=len(jobs),
                completed=sum(j.outcome == "completed" for j in jobs),
                failed=sum(j.outcome == "failed" for j in jobs),
                failures_by_code=codes,
                metrics=_metrics(jobs, None if arm == experiment.control else control, intervals),
            )
        )
    return Report(control=experiment.control, variants=arms)
