"""The event bus: JetStream streams, durable pull consumers with explicit ack, retries with
back-off, dead letters, and publishing with Nats-Msg-Id = event_id (ARCHITECTURE.md, Events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from opentelemetry.sdk.trace import TracerProvider
from pydantic import TypeAdapter, ValidationError

from seoblog_contracts import Event, JobCancelled, JobFailed, Stage, Subjects, stage_event_id
from seoblog_telemetry import bind_job

from .settings import ServiceSettings

log = logging.getLogger("seoblog.bus")

E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]
CancelledCheck = Callable[[str], Awaitable[bool]]


class JobError(Exception):
    """A failure a handler understands: ends the job with this code and message.

    retryable=False fails the job at once; retryable=True lets the bus redeliver with
    back-off, and the job fails with this code only when the last delivery fails too.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass
class ConsumerStats:
    handled: int = 0
    retried: int = 0
    failed: int = 0
    dead_lettered: int = 0
    malformed: int = 0
    dropped_cancelled: int = 0


class Bus:
    """One service's connection to the SEO streams."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        tracer_provider: TracerProvider | None = None,
        stage: Stage | None = None,
    ) -> None:
        self.settings = settings
        self.subjects = Subjects(settings.namespace)
        self.stage = stage
        middlewares = (
            [NatsTelemetryMiddleware(tracer_provider=tracer_provider)] if tracer_provider else []
        )
        self.broker = NatsBroker(
            settings.nats_url,
            middlewares=middlewares,
            # FastStream logs every message and task restart at INFO; ours say what matters.
            logger=_quiet_logger(f"seoblog.{settings.service}.faststream"),
            log_level=logging.DEBUG,
            graceful_timeout=10,
            max_reconnect_attempts=-1,
        )
        self._stream = JStream(self.subjects.stream, declare=False)
        self.stats: dict[str, ConsumerStats] = {}
        # Set by Parts for pipeline stages: events of a cancelled job are acked and dropped
        # before their handler runs, so no stage's handler needs to know about cancelling.
        self.cancelled: CancelledCheck | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def js(self) -> JetStreamContext:
        return self.broker.config.connection_state.stream  # type: ignore[no-any-return]

    @property
    def nc(self) -> NatsClient:
        """The core NATS connection (for fan-out that must not be stored in a stream)."""
        return self.broker.config.connection_state.connection  # type: ignore[no-any-return]

    async def start(self) -> None:
        """Connect, declare the streams, then start the consumers."""
        await self.broker.connect()
        await self.declare_streams()
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def ping(self) -> bool:
        try:
            await self.js.account_info()
            return True
        except Exception:
            return False

    async def declare_streams(self) -> None:
        s = self.settings
        await _ensure_stream(
            self.js,
            StreamConfig(
                name=self.subjects.stream,
                subjects=self.subjects.stream_subjects(),
                storage=StorageType.FILE,
                max_age=s.stream_max_age_s,
                duplicate_window=120,
            ),
        )
        await _ensure_stream(
            self.js,
            StreamConfig(
                name=self.subjects.dlq_stream,
                subjects=[self.subjects.dlq_all],
                storage=StorageType.FILE,
                max_age=s.dlq_max_age_s,
                duplicate_window=120,
            ),
        )

    # -- publishing --------------------------------------------------------------------------

    async def publish(self, event: Event, *, subject: str | None = None) -> None:
        """Publish to JetStream; the event id doubles as Nats-Msg-Id so duplicates are dropped."""
        await self.broker.publish(
            event.model_dump(mode="json"),
            subject or self.subjects.of(event),
            headers={"Nats-Msg-Id": event.event_id},
            stream=self.subjects.stream,
            timeout=10,
        )

    async def dead_letter(self, msg: NatsMessage, *, durable: str, reason: str) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        headers = {k: v for k, v in (raw.headers or {}).items() if k != "Nats-Msg-Id"}
        headers |= {
            "Nats-Msg-Id": f"dlq:{meta.stream}:{meta.sequence.stream}",
            "Seoblog-Dlq-Reason": reason[:500],
            "Seoblog-Dlq-Consumer": durable,
            "Seoblog-Dlq-Subject": raw.subject,
            "Seoblog-Dlq-Deliveries": str(meta.num_delivered),
        }
        await self.broker.publish(
            raw.data,
            self.subjects.dlq(raw.subject),
            headers=headers,
            stream=self.subjects.dlq_stream,
            timeout=10,
        )

    # -- consuming ---------------------------------------------------------------------------

    def consume(
        self,
        subject: str,
        durable: str,
        event_type: Any,
        handler: Handler[Any],
        *,
        stage: Stage | None = None,
        max_deliver: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Register a durable pull consumer calling `handler` with the decoded event.

        Success acks. A malformed message goes to the DLQ and is acked. A JobError that is not
        retryable publishes seo.job.failed and acks. Any other failure is nak'ed with back-off
        until the last delivery, which publishes seo.job.failed, copies the message to the
        DLQ and acks, so nothing blocks the consumer. When `self.cancelled` is set (pipeline
        stages), an event of a cancelled job is acked and dropped without calling `handler`.
        Messages of one fetch run concurrently (up to `concurrency`); a consumer that needs
        stream order uses concurrency=1.
        """
        s = self.settings
        deliveries = max_deliver or s.max_deliver
        stats = self.stats.setdefault(durable, ConsumerStats())
        decoder: TypeAdapter[Event] = TypeAdapter(event_type)  # a model or a union of models
        failure_stage = stage or self.stage
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=s.ack_wait_s,
            max_deliver=deliveries,
            max_ack_pending=s.max_ack_pending,
            filter_subject=subject,
        )

        async def on_message(msg: NatsMessage) -> None:
            raw = msg.raw_message
            attempt = raw.metadata.num_delivered
            try:
                event = decoder.validate_json(raw.data)
            except ValidationError as exc:
                stats.malformed += 1
                log.error(
                    "malformed event dead-lettered",
                    extra={"subject": raw.subject, "consumer": durable, "error": str(exc)[:500]},
                )
                await self.dead_letter(msg, durable=durable, reason=f"malformed: {exc}"[:500])
                await msg.ack()
                return
            with bind_job(event.job_id):
                if await self._drop_if_cancelled(event, durable, stats):
                    await msg.ack()
                    return
                heartbeat = asyncio.create_task(self._keep_alive(msg))
                try:
                    await handler(event)
                except JobError as exc:
                    if exc.retryable and attempt < deliveries:
                        await self._retry(msg, attempt, durable, exc, stats)
                        return
                    # A retryable error that outlived its deliveries is a processing problem:
                    # keep a copy in the DLQ. A permanent one (a 404, say) is just the job's fate.
                    await self._fail(
                        msg,
                        event,
                        failure_stage,
                        exc.code,
                        exc.message,
                        durable,
                        retryable=exc.retryable,
                        dead_letter=exc.retryable,
                    )
                    stats.failed += 1
                except Exception as exc:
                    if attempt < deliveries:
                        await self._retry(msg, attempt, durable, exc, stats)
                        return
                    log.exception(
                        "handler failed on its last delivery", extra={"consumer": durable}
                    )
                    await self._fail(
                        msg,
                        event,
                        failure_stage,
                        "internal_error",
                        f"{type(exc).__name__}: {exc}"[:1000],
                        durable,
                        retryable=True,
                        dead_letter=True,
                    )
                    stats.failed += 1
                else:
                    stats.handled += 1
                finally:
                    heartbeat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heartbeat
                await msg.ack()

        self.broker.subscriber(
            subject,
            stream=self._stream,
            durable=durable,
            config=config,
            pull_sub=PullSub(batch_size=concurrency or s.concurrency, timeout=1.0),
            ack_policy=AckPolicy.MANUAL,
        )(on_message)

    async def _drop_if_cancelled(self, event: Event, durable: str, stats: ConsumerStats) -> bool:
        if self.cancelled is None or isinstance(event, JobCancelled) or not event.job_id:
            return False
        try:
            cancelled = await self.cancelled(event.job_id)
        except Exception:  # the check must never block the pipeline: handle the event
            log.warning("cancellation check failed", exc_info=True)
            return False
        if cancelled:
            stats.dropped_cancelled += 1
            log.info("event of a cancelled job dropped", extra={"consumer": durable})
        return cancelled

    async def _keep_alive(self, msg: NatsMessage) -> None:
        """In-progress acks while a long handler runs, so the message is not redelivered."""
        while True:
            await asyncio.sleep(max(self.settings.ack_wait_s / 3, 0.5))
            await msg.in_progress()

    async def _retry(
        self, msg: NatsMessage, attempt: int, durable: str, exc: Exception, stats: ConsumerStats
    ) -> None:
        backoff = self.settings.retry_backoff_s or [1.0]
        base = backoff[min(attempt - 1, len(backoff) - 1)]
        delay = base * random.uniform(0.8, 1.2)  # jitter keeps replicas from retrying in step
        stats.retried += 1
        log.warning(
            "handler failed; will retry",
            extra={
                "consumer": durable,
                "attempt": attempt,
                "delay_s": round(delay, 2),
                "error": f"{type(exc).__name__}: {exc}"[:500],
            },
        )
        await msg.nack(delay=delay)

    async def _fail(
        self,
        msg: NatsMessage,
        event: Event,
        stage: Stage | None,
        code: str,
        message: str,
        durable: str,
        *,
        retryable: bool,
        dead_letter: bool,
    ) -> None:
        if stage is not None:
            await self.publish(
                JobFailed(
                    event_id=stage_event_id(event.job_id, f"failed:{stage.value}"),
                    job_id=event.job_id,
                    stage=stage,
                    code=code,
                    message=message,
                    retryable=retryable,
                )
            )
        if dead_letter:
            self.stats[durable].dead_lettered += 1
            await self.dead_letter(msg, durable=durable, reason=f"{code}: {message}")
        log.warning("job failed", extra={"consumer": durable, "code": code, "error": message})


def _quiet_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    return logger


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config=config)
    except BadRequestError as exc:
        if "already in use" not in (exc.description or ""):
            raise
        await js.update_stream(config=config)
