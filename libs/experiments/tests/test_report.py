from datetime import UTC, datetime, timedelta

from seoblog_experiments import Experiment, JobFigures, Ramp, breaches, build_report, step_holds
from seoblog_experiments.report import compare_means, compare_quantiles, compare_rates


def _experiment(**fields: object) -> Experiment:
    base: dict[str, object] = {"id": "e", "variants": [{"name": "v", "share": 50}]}
    return Experiment.model_validate(base | fields)


def _jobs(variant: str, n: int, score: float, fail_every: int = 0) -> list[JobFigures]:
    jobs = []
    for i in range(n):
        failed = fail_every and i % fail_every == 0
        jobs.append(
            JobFigures(
                variant=variant,
                outcome="failed" if failed else "completed",
                failure_code="llm_timeout" if failed else None,
                e2e_s=1.0 + (i % 5) * 0.1,
                stages_s={"crawl": 0.2, "translate": 0.3, "generate": 0.5 + (i % 3) * 0.1},
                score=score + (i % 7) - 3,
                tokens=1000 + i,
                cost_usd=0.001,
                revised=i % 4 == 0,
            )
        )
    return jobs


def test_welch_finds_a_real_difference_and_not_a_fake_one():
    low, high = [60 + i % 5 for i in range(40)], [80 + i % 5 for i in range(40)]
    result = compare_means(high, low)
    assert result.significant
    assert result.difference == -20
    assert result.ci_low is not None
    assert result.ci_high is not None
    assert result.ci_low < -20 < result.ci_high
    same = compare_means(high, list(reversed(high)))
    assert not same.significant
    assert same.p_value is not None
    assert same.p_value > 0.5


def test_rates_and_quantiles_compare_with_intervals():
    result = compare_rates(2, 100, 30, 100)
    assert result.value == 0.3
    assert result.significant
    assert result.ci_low is not None
    assert result.ci_low > 0
    assert not compare_rates(5, 100, 6, 100).significant
    slow = compare_quantiles(
        [1.0 + i / 100 for i in range(50)], [3.0 + i / 100 for i in range(50)], 0.95
    )
    assert slow.significant
    assert slow.difference is not None
    assert slow.difference > 1.5


def test_report_lists_control_first_with_every_metric():
    experiment = _experiment()
    report = build_report(experiment, _jobs("control", 30, 80) + _jobs("v", 30, 60, 5))
    assert [a.variant for a in report.variants] == ["control", "v"]
    control, variant = report.variants
    assert control.share == 50
    assert variant.share == 50
    assert variant.failed == 6
    assert variant.failures_by_code == {"llm_timeout": 6}
    assert set(variant.metrics) >= {
        "failure_rate",
        "seo_score",
        "latency_e2e_p95_s",
        "cost_per_post_usd",
        "revision_rate",
        "tokens_per_post",
    }
    assert control.metrics["seo_score"].difference is None
    assert variant.metrics["seo_score"].significant


def test_guardrails_need_the_minimum_sample_then_break():
    experiment = _experiment()
    small = build_report(experiment, _jobs("control", 10, 80) + _jobs("v", 10, 60))
    assert breaches(experiment, small) == []  # default min_sample is 20
    big = build_report(experiment, _jobs("control", 25, 80) + _jobs("v", 25, 60))
    found = breaches(experiment, big)
    assert [b.rule for b in found] == ["seo_score below control - 5"]
    assert found[0].figures["control_n"] == 25


def test_a_step_advances_only_after_its_jobs_and_time_without_breaches():
    now = datetime.now(UTC)
    experiment = _experiment(
        ramp=Ramp(steps=[10, 50, 100], min_jobs=5, min_seconds=60),
        step=0,
        step_started_at=now - timedelta(seconds=61),
    )
    good = build_report(experiment, _jobs("control", 25, 80) + _jobs("v", 25, 82))
    assert step_holds(experiment, good, finished_in_step=5, now=now)
    assert not step_holds(experiment, good, finished_in_step=4, now=now)
    assert not step_holds(experiment, good, finished_in_step=5, now=now - timedelta(seconds=2))
    bad = build_report(experiment, _jobs("control", 25, 80) + _jobs("v", 25, 60))
    assert not step_holds(experiment, bad, finished_in_step=50, now=now)


def test_a_report_without_intervals_has_the_same_figures_for_guardrails():
    experiment = _experiment()
    jobs = _jobs("control", 25, 80) + _jobs("v", 25, 60)
    full = build_report(experiment, jobs)
    cheap = build_report(experiment, jobs, intervals=False)
    for metric, result in full.variants[1].metrics.items():
        fast = cheap.variants[1].metrics[metric]
        assert (fast.value, fast.n, fast.difference) == (
            result.value,
            result.n,
            result.difference,
        ), metric
    assert cheap.variants[1].metrics["latency_e2e_p95_s"].ci_low is None
    assert full.variants[1].metrics["latency_e2e_p95_s"].ci_low is not None
    assert [b.rule for b in breaches(experiment, cheap)] == [
        b.rule for b in breaches(experiment, full)
    ]
