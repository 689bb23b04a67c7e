"""A cancelled job's later events are acked and dropped before any stage handler sees them."""

from pathlib import Path

from seoblog_contracts import JobCancelled, JobProgress, Stage
from seoblog_runtime import Bus, Cache, ServiceSettings, Store, build_parts
from seoblog_runtime.parts import follow_cancellations
from seoblog_testing import settings_for, wait_until


def progress(job_id: str) -> JobProgress:
    return JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=10)


async def test_events_of_a_cancelled_job_are_dropped_and_others_handled(service_env):
    settings = settings_for(ServiceSettings, service_env, service="probe")
    bus = Bus(settings, stage=Stage.TRANSLATE)
    cache = Cache(settings.cache_prefix, settings.redis_url)
    await cache.open()
    follow_cancellations(bus, cache, ttl_s=60)
    handled: list[str] = []

    async def handle(event: JobProgress) -> None:
        handled.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-handle", JobProgress, handle)
    await bus.start()
    try:
        await bus.publish(JobCancelled(job_id="job-gone"))
        assert bus.cancelled is not None
        await wait_until(lambda: bus.cancelled("job-gone"))
        await bus.publish(progress("job-gone"))
        await bus.publish(progress("job-kept"))
        await wait_until(lambda: bus.stats["probe-handle"].dropped_cancelled == 1)
        await wait_until(lambda: handled == ["job-kept"])
        assert bus.stats["probe-note_cancelled"].handled == 1
    finally:
        await bus.stop()
        await cache.close()


async def test_another_replica_sees_the_cancellation_through_redis(service_env):
    settings = settings_for(ServiceSettings, service_env, service="probe")
    first = Cache(settings.cache_prefix, settings.redis_url)
    second = Cache(settings.cache_prefix, settings.redis_url)
    await first.open()
    await second.open()
    noting, other = Bus(settings), Bus(settings)
    follow_cancellations(noting, first, ttl_s=60)
    follow_cancellations(other, second, ttl_s=60)  # never started: it only reads the notes
    await noting.start()
    try:
        await noting.publish(JobCancelled(job_id="job-x"))
        assert noting.cancelled is not None
        await wait_until(lambda: noting.cancelled("job-x"))
        assert other.cancelled is not None
        assert await other.cancelled("job-x")
        assert not await other.cancelled("job-y")
    finally:
        await noting.stop()
        await first.close()
        await second.close()


def test_only_pipeline_stages_follow_cancellations(service_env):
    def store(url: str, schema: str, pool_max: int) -> Store:
        return Store(url, schema, Path("."), pool_max=pool_max)

    stage = build_parts(
        settings_for(ServiceSettings, service_env, service="st"), store, stage=Stage.CRAWL
    )
    other = build_parts(settings_for(ServiceSettings, service_env, service="mo"), store)
    assert "st-note_cancelled" in stage.bus.stats
    assert stage.bus.cancelled is not None
    assert other.bus.stats == {}
    assert other.bus.cancelled is None
