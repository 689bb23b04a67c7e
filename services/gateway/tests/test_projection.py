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


HOSTILE_HTML = (
    "<h2>Title</h2><p>Text<script>alert(document.cookie)</script></p>"
    '<img src="x" onerror="alert(1)"><img src="https://tracker.example/p.gif">'
    '<a href="javascript:alert(1)" onclick="alert(2)">link</a>\n'
    '<script type="application/ld+json">{"@type":"Article","headline":"Title"}</script>\n'
)


async def test_a_post_event_with_scripts_in_its_html_is_stored_and_served_without_them(
    gateway, bus, jobs
):
    job = await jobs.submit(gateway)
    # Published and signed on the bus, as anything that reaches NATS with the key could do.
    await bus.publish(jobs.post(job["id"], html=HOSTILE_HTML))
    done = await jobs.wait_for_state(gateway, job["id"], "completed")
    post_id = done["post"]["id"]
    served = await gateway.get(f"/v1/posts/{post_id}", params={"format": "html"})
    stored = (await gateway.get(f"/v1/posts/{post_id}")).json()["html"]
    for html in (served.text, stored):
        assert "alert" not in html
        assert "onerror" not in html
        assert "onclick" not in html
        assert "javascript:" not in html
        assert "tracker.example" not in html
        assert "<h2>Title</h2>" in html
        # Our JSON-LD (data, not script) survives, written out again.
        assert html.count("<script") == 1
        assert '<script type="application/ld+json">{"@type":"Article"' in html
