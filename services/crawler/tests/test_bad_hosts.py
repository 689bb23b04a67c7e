"""A job whose URL has a host name DNS cannot carry (an outsider's event, or one from before the
gateway refused them) fails once as `bad_url`, not as `internal_error` after every redelivery."""

from typing import Any

from crawler.app import create_app
from crawler.settings import Settings
from seoblog_contracts import JobSpec, JobSubmitted, new_event_id
from seoblog_testing import running_app, settings_for, wait_until


async def test_a_64_character_label_fails_the_job_as_bad_url_at_once(service_env, bus, events):
    settings: Settings = settings_for(
        Settings, service_env, extract_workers=1, fetch_timeout_s=2, fetch_attempts=1
    )
    submitted = JobSubmitted(
        job_id=new_event_id(), spec=JobSpec(url=f"https://{'a' * 64}.example.com/article")
    )
    async with running_app(create_app(settings)):
        await bus.publish(submitted)
        await wait_until(lambda: events.of("job.failed", submitted.job_id), timeout_s=30)

    failures: list[Any] = events.of("job.failed", submitted.job_id)
    error = failures[0].data
    assert (error["code"], error["retryable"]) == ("bad_url", False)
    assert "at most 63" in error["message"]
    assert len(failures) == 1
    assert not events.of("page.crawled", submitted.job_id)
