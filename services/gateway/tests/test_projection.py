from gateway.projection import advance, state_of
from seoblog_contracts import (
    JobFailed,
    JobProgress,
    JobState,
    JobSubmitted,
    Stage,
)


def test_progress_of_each_stage_announces_its_state():
    assert state_of(JobProgress(job_id="j", stage=Stage.CRAWL, percent=0)) == JobState.CRAWLING
    assert state_of(JobProgress(job_id="j", stage=Stage.GENERATE, percent=50)) == (
        JobState.GENERATING
    )


def test_failure_announces_failed():
    event = JobFailed(job_id="j", stage=Stage.CRAWL, code="not_found", message="gone")
    assert state_of(event) == JobState.FAILED


def test_submission_announces_queued():
    assert state_of(JobSubmitted(job_id="j", spec={"url": "https://a.example/x"})) == (
        JobState.QUEUED
    )


def test_jobs_only_move_forward():
    assert advance(JobState.QUEUED, JobState.CRAWLING) == JobState.CRAWLING
    assert advance(JobState.TRANSLATING, JobState.CRAWLING) is None
    assert advance(JobState.CRAWLING, JobState.CRAWLING) is None


def test_finished_jobs_never_change_again():
    assert advance(JobState.COMPLETED, JobState.FAILED) is None
    assert advance(JobState.FAILED, JobState.COMPLETED) is None
    assert advance(JobState.CANCELLED, JobState.GENERATING) is None


def test_failure_ends_a_job_from_any_running_state():
    for state in (JobState.QUEUED, JobState.CRAWLING, JobState.GENERATING):
        assert advance(state, JobState.FAILED) == JobState.FAILED
