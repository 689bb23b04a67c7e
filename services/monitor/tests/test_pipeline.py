from datetime import UTC, datetime, timedelta

import pytest

from monitor.pipeline import observe, transition_of
from seoblog_contracts import (
    AlertFired,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSpec,
    JobState,
    JobSubmitted,
    PostGenerated,
    SeoReport,
    Stage,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_post_generated(job_id: str = "j") -> PostGenerated:
    return PostGenerated(
        job_id=job_id,
        post_id="p",
        source_url="https://example.com/a",
        language="en",
        title="t",
        slug="t",
        meta_description="m",
        markdown="# t",
        html="<h1>t</h1>",
        keywords=[],
        seo=SeoReport(score=80),
        writer="offline",
    )


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (JobSubmitted(job_id="j", spec=JobSpec(url="https://example.com/a")), JobState.QUEUED),
        (JobProgress(job_id="j", stage=Stage.CRAWL, percent=0), JobState.CRAWLING),
        (JobProgress(job_id="j", stage=Stage.TRANSLATE, percent=50), JobState.TRANSLATING),
        (JobProgress(job_id="j", stage=Stage.GENERATE, percent=100), JobState.GENERATING),
        (make_post_generated(), JobState.COMPLETED),
        (JobCancelled(job_id="j"), JobState.CANCELLED),
    ],
)
def test_transition_of_maps_each_pipeline_event_to_its_job_state(event, state):
    transition = transition_of(event)
    assert transition is not None
    assert (transition.job_id, transition.state, transition.at) == ("j", state, event.occurred_at)


def test_transition_of_a_failure_keeps_stage_and_code():
    failed = JobFailed(job_id="j", stage=Stage.TRANSLATE, code="llm_down", message="x")
    transition = transition_of(failed)
    assert transition is not None
    assert (transition.state, transition.stage, transition.code) == (
        JobState.FAILED,
        "translate",
        "llm_down",
    )


def test_transition_of_an_alert_moves_no_job():
    assert transition_of(AlertFired(alert="a", summary="s")) is None


def test_observe_measures_each_span_when_its_second_end_arrives():
    times = {JobState.QUEUED: at(0), JobState.CRAWLING: at(1), JobState.TRANSLATING: at(3)}
    assert observe(JobState.TRANSLATING, times).latencies == [("crawl", 2.0)]
    times |= {JobState.GENERATING: at(6), JobState.COMPLETED: at(10)}
    observation = observe(JobState.COMPLETED, times)
    assert sorted(observation.latencies) == [("end_to_end", 10.0), ("generate", 4.0)]
    assert observation.finished is JobState.COMPLETED


def test_observe_measures_a_span_whose_start_arrives_after_its_end():
    times = {JobState.TRANSLATING: at(3), JobState.CRAWLING: at(1)}
    assert observe(JobState.CRAWLING, times).latencies == [("crawl", 2.0)]


def test_observe_drops_negative_spans_from_skewed_clocks():
    times = {JobState.CRAWLING: at(5), JobState.TRANSLATING: at(3)}
    assert observe(JobState.TRANSLATING, times).latencies == []


def test_observe_finishes_a_job_only_with_its_first_terminal_state():
    assert observe(JobState.FAILED, {JobState.FAILED: at(2)}).finished is JobState.FAILED
    later = observe(JobState.CANCELLED, {JobState.FAILED: at(2), JobState.CANCELLED: at(3)})
    assert later.finished is None
    assert observe(JobState.CRAWLING, {JobState.CRAWLING: at(1)}).finished is None
