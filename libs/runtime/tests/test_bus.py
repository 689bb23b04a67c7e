import asyncio
import json

from seoblog_contracts import JobFailed, JobProgress, Stage, Subjects
from seoblog_runtime import Bus, JobError, ServiceSettings
from seoblog_testing import settings_for, signed_headers, wait_until


def make_bus(service_env: dict[str, str], **overrides: object) -> Bus:
    settings = settings_for(ServiceSettings, service_env, service="probe", **overrides)
    return Bus(settings, stage=Stage.CRAWL)


def progress(job_id: str, percent: int = 10) -> JobProgress:
    return JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=percent)


async def test_consumer_receives_published_event_once_despite_duplicate_publish(service_env):
    bus = make_bus(service_env)
    got: list[JobProgress] = []

    async def handle(event: JobProgress) -> None:
        got.append(event)

    bus.consume(bus.subjects.of(JobProgress), "probe-handle", JobProgress, handle)
    await bus.start()
    try:
        event = progress("job-1")
        await bus.publish(event)
        await bus.publish(event)  # same event_id: JetStream drops it as a duplicate
        await wait_until(lambda: got)
        await asyncio.sleep(0.3)
        assert [e.event_id for e in got] == [event.event_id]
        stream = await bus.js.stream_info(bus.subjects.stream)
        assert stream.state.messages == 1
    finally:
        await bus.stop()


async def test_failing_handler_is_retried_then_succeeds(service_env):
    bus = make_bus(service_env)
    attempts: list[int] = []

    async def flaky(event: JobProgress) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("transient")

    bus.consume(bus.subjects.of(JobProgress), "probe-flaky", JobProgress, flaky, max_deliver=4)
    await bus.start()
    try:
        await bus.publish(progress("job-2"))
        await wait_until(lambda: bus.stats["probe-flaky"].handled == 1)
        assert len(attempts) == 3
        assert bus.stats["probe-flaky"].retried == 2
    finally:
        await bus.stop()


async def test_last_failed_delivery_fails_the_job_dead_letters_and_unblocks(service_env, events):
    bus = make_bus(service_env, max_deliver=2)
    handled: list[str] = []

    async def handle(event: JobProgress) -> None:
        if event.job_id == "poison":
            raise RuntimeError("always broken")
        handled.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-poison", JobProgress, handle)
    await bus.start()
    try:
        await bus.publish(progress("poison"))
        await bus.publish(progress("healthy"))
        await wait_until(lambda: events.of("job.failed", "poison") and handled)
        failed = JobFailed.model_validate(events.of("job.failed", "poison")[0].data)
        assert failed.code == "internal_error"
        assert failed.stage == Stage.CRAWL
        assert "always broken" in failed.message
        await wait_until(lambda: events.of("dlq.job.progress"))
        dead = events.of("dlq.job.progress")[0]
        assert dead.headers["Seoblog-Dlq-Consumer"] == "probe-poison"
        assert json.loads(dead.raw)["job_id"] == "poison"
        info = await wait_until(lambda: _acked_all(bus, "probe-poison"))
        assert info
    finally:
        await bus.stop()


async def _acked_all(bus: Bus, durable: str) -> bool:
    info = await bus.js.consumer_info(bus.subjects.stream, durable)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_permanent_job_error_fails_at_once_without_retry(service_env, events):
    bus = make_bus(service_env, max_deliver=5)
    calls: list[int] = []

    async def handle(event: JobProgress) -> None:
        calls.append(1)
        raise JobError("not_found", "The page returned HTTP 404 Not Found")

    bus.consume(bus.subjects.of(JobProgress), "probe-perm", JobProgress, handle)
    await bus.start()
    try:
        await bus.publish(progress("gone"))
        await wait_until(lambda: events.of("job.failed", "gone"))
        failed = events.of("job.failed", "gone")[0].data
        assert failed["code"] == "not_found"
        assert failed["retryable"] is False
        await asyncio.sleep(0.3)
        assert len(calls) == 1
        assert not events.of("dlq.job.progress")
    finally:
        await bus.stop()


async def test_malformed_message_is_dead_lettered_and_consumer_keeps_going(
    service_env, events, nats_client
):
    bus = make_bus(service_env)
    got: list[str] = []

    async def handle(event: JobProgress) -> None:
        got.append(event.job_id)

    bus.consume(bus.subjects.of(JobProgress), "probe-malformed", JobProgress, handle)
    await bus.start()
    try:
        js = nats_client.jetstream()
        subject = Subjects(bus.settings.namespace).of(JobProgress)
        for body in (b"{not json", b'{"job_id": "x", "percent": 900}'):
            await js.publish(
                subject, body, stream=bus.subjects.stream, headers=signed_headers(body)
            )
        await bus.publish(progress("fine"))
        await wait_until(lambda: got == ["fine"])
        await wait_until(lambda: len(events.of("dlq.job.progress")) == 2)
        assert bus.stats["probe-malformed"].malformed == 2
    finally:
        await bus.stop()
