"""The event bus: JetStream streams, durable pull consumers with explicit ack, retries with
back-off, dead letters, signed events, and publishing with Nats-Msg-Id = event_id
(ARCHITECTURE.md, Events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import propagate
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Tracer
from pydantic import TypeAdapter, ValidationError

from seoblog_contracts import (
    SIGNATURE_HEADER,
    Event,
    JobCancelled,
    JobFailed,
    JobProgress,
    Stage,
    Subjects,
    sign,
    stage_event_id,
    verify,
)
from seoblog_telemetry import bind_job

from .settings import ServiceSettings

log = logging.getLogger("seoblog.bus")

E = TypeVar("E", bound=Event)
Handler = Callable[[E], Awaitable[None]]
BatchHandler = Callable[[list[Any]], Awaitable[None]]
CancelledCheck = Callable[[str], Awaitable[bool]]

# An idle consumer waits this long in one pull request (one request per period, no spans);
# a message that arrives meanwhile is handed over at once.
_IDLE_FETCH_S = 5.0
# While a backlog drains, a pull for several messages returns what is there; this bounds its
# wait when the backlog ran out meanwhile, before the consumer falls back to the idle pull.
_BACKLOG_FETCH_S = 0.02
# Settings of a durable consumer that JetStream lets a later release change in place (its
# ack policy and deliver policy cannot be).
_EDITABLE = ("filter_subject", "max_deliver", "max_ack_pending", "ack_wait")
# Every this many empty pulls in a row, check that the consumer still exists (a deleted or
# lost consumer answers nothing, just like an idle one).
_IDLE_CHECKS = 12


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
    rejected: int = 0  # unsigned or badly signed
    dropped_cancelled: int = 0


@dataclass
class _Consumer:
    subject: str
    durable: str
    config: ConsumerConfig
    decoder: TypeAdapter[Any]
    stats: ConsumerStats
    deliveries: int
    failure_stage: Stage | None
    kind: Literal["one", "batch"]
    slots: int
    handler: Any
    flush_s: float = 0.0
    task: asyncio.Task[None] | None = None
    sub: JetStreamContext.PullSubscription | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


class _Slots:
    """Free handler slots of one consumer: the puller takes all free ones for one fetch."""

    def __init__(self, n: int) -> None:
        self.free = n
        self._changed = asyncio.Event()

    async def take_all(self) -> int:
        while self.free == 0:
            self._changed.clear()
            await self._changed.wait()
        taken, self.free = self.free, 0
        return taken

    def give(self, n: int = 1) -> None:
        if n:
            self.free += n
            self._changed.set()


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
        # FastStream holds the connection (reconnects forever); pulling, acking and publishing
        # go straight to nats-py, so one slow message never waits on a whole fetched batch.
        self.broker = NatsBroker(
            settings.nats_servers,
            logger=_quiet_logger(f"seoblog.{settings.service}.faststream"),
            log_level=logging.DEBUG,
            graceful_timeout=10,
            max_reconnect_attempts=-1,
            security=_nats_security(settings),
        )
        self._tracer: Tracer | None = (
            tracer_provider.get_tracer("seoblog.bus") if tracer_provider else None
        )
        self._key = settings.event_key.get_secret_value().encode() if settings.event_key else None
        self.stats: dict[str, ConsumerStats] = {}
        self._consumers: list[_Consumer] = []
        self._running = False
        self.fetch_timeout_s = _IDLE_FETCH_S
        self._progress = _ProgressGate(settings.progress_interval_s)
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
        if self._key is None and self._consumers:
            log.warning(
                "SEOBLOG_EVENT_KEY is not set: events are neither signed nor verified",
                extra={"consumers": len(self._consumers)},
            )
        self._running = True
        for consumer in self._consumers:
            if consumer.task is None:
                await self._subscribe(consumer)
                consumer.task = asyncio.create_task(
                    self._pull(consumer), name=f"pull:{consumer.durable}"
                )

    async def stop(self) -> None:
        """Stop pulling, let running handlers finish (bounded), then close the connection."""
        self._running = False
        pullers = [c.task for c in self._consumers if c.task is not None]
        for task in pullers:
            task.cancel()
        await asyncio.gather(*pullers, return_exceptions=True)
        inflight = [t for c in self._consumers for t in c.inflight]
        if inflight:
            _, pending = await asyncio.wait(inflight, timeout=10)
            for task in pending:  # redelivered after ack_wait, like a crash would be
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for consumer in self._consumers:
            consumer.task = None
            if consumer.sub is not None:
                # Late status replies of finished pulls sit in the inbox queue; a drain would
                # wait its whole timeout for someone to read them.
                with contextlib.suppress(Exception):
                    await consumer.sub.unsubscribe()
                consumer.sub = None
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
                num_replicas=s.stream_replicas,
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
                num_replicas=s.stream_replicas,
            ),
        )

    # -- publishing --------------------------------------------------------------------------

    def encode(self, event: Event) -> tuple[bytes, dict[str, str]]:
        """The body and headers `event` travels with: its id as Nats-Msg-Id (duplicates are
        dropped), the signature when a key is set, and the trace context."""
        body = event.__pydantic_serializer__.to_json(event)
        headers = {"Nats-Msg-Id": event.event_id}
        if self._key is not None:
            headers[SIGNATURE_HEADER] = sign(self._key, body)
        if self._tracer is not None:
            propagate.inject(headers)
        return body, headers

    async def publish(self, event: Event, *, subject: str | None = None, ack: bool = True) -> None:
        """Publish to JetStream and wait for the stream's ack.

        ack=False (JobProgress only: progress that needs no confirmed write) publishes on core
        NATS without waiting; the stream still stores it. It never raises: a hiccup drops it.
        Such progress is coalesced (see _ProgressGate): within `progress_interval_s` of the
        last one a job's stage sent, a mere percent update of the same phase is left out.
        """
        if not ack:
            if not isinstance(event, JobProgress):
                raise TypeError("publish(ack=False) is for JobProgress only")
            if not self._progress.admit(event):
                return
        body, headers = self.encode(event)
        target = subject or self.subjects.of(event)
        if ack:
            await self.js.publish(
                target, body, timeout=10, stream=self.subjects.stream, headers=headers
            )
            return
        try:
            await self.nc.publish(target, body, headers=headers)
        except Exception as exc:
            log.warning(
                "progress not published", extra={"error": f"{type(exc).__name__}: {exc}"[:300]}
            )

    async def dead_letter(self, msg: Msg, *, durable: str, reason: str) -> None:
        """Copy `msg` to the DLQ; the id names the consumer, so each consumer's copy is kept."""
        meta = msg.metadata
        headers = {k: v for k, v in (msg.headers or {}).items() if k != "Nats-Msg-Id"}
        headers |= {
            "Nats-Msg-Id": f"dlq:{durable}:{meta.stream}:{meta.sequence.stream}",
            "Seoblog-Dlq-Reason": reason[:500],
            "Seoblog-Dlq-Consumer": durable,
            "Seoblog-Dlq-Subject": msg.subject,
            "Seoblog-Dlq-Deliveries": str(meta.num_delivered),
        }
        await self.js.publish(
            self.subjects.dlq(msg.subject),
            msg.data,
            timeout=10,
            stream=self.subjects.dlq_stream,
            headers=headers,
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

        Success acks. A malformed, unsigned or badly signed message goes to the DLQ and is
        acked. A JobError that is not retryable publishes seo.job.failed and acks. Any other
        failure is nak'ed with back-off until the last delivery, which publishes
        seo.job.failed, copies the message to the DLQ and acks, so nothing blocks the consumer.
        When `self.cancelled` is set (pipeline stages), an event of a cancelled job is acked
        and dropped without calling `handler`. Up to `concurrency` messages run at once and
        the consumer pulls again as soon as one slot frees; concurrency=1 keeps stream order.
        """
        self._register(
            subject,
            durable,
            event_type,
            handler,
            kind="one",
            slots=concurrency or self.settings.concurrency,
            stage=stage,
            max_deliver=max_deliver,
        )

    def consume_batch(
        self,
        subject: str,
        durable: str,
        event_type: Any,
        handler: BatchHandler,
        *,
        max_batch: int = 256,
        flush_s: float = 0.0,
    ) -> None:
        """Register a durable pull consumer calling `handler` with the events of one fetch, in
        stream order (for consumers that only project or record: one transaction per batch).
        Batches are not traced.

        Bad messages are dead-lettered one by one first and are not in the list. Success acks
        all. If the handler raises, each event is retried alone (`handler([event])`), so one
        bad event cannot hold back the others; one that still fails takes the normal retry /
        last-delivery / DLQ path. Events of cancelled jobs are not dropped here. The handler's
        queries make no spans either (they would be orphans, which the sampler drops).

        `flush_s` > 0: after a batch that was not full, the consumer waits out the rest of
        that many seconds (from when the batch came) before it pulls again, so events that
        trickle in arrive as one batch instead of one each: fewer, larger transactions, for a
        consumer whose readers can wait that long. Acks still follow the handler at once.
        """
        self._register(
            subject,
            durable,
            event_type,
            handler,
            kind="batch",
            slots=max_batch,
            stage=None,
            max_deliver=None,
            flush_s=flush_s,
        )

    def _register(
        self,
        subject: str,
        durable: str,
        event_type: Any,
        handler: Any,
        *,
        kind: Literal["one", "batch"],
        slots: int,
        stage: Stage | None,
        max_deliver: int | None,
        flush_s: float = 0.0,
    ) -> None:
        s = self.settings
        deliveries = max_deliver or s.max_deliver
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=s.ack_wait_s,
            max_deliver=deliveries,
            max_ack_pending=max(s.max_ack_pending, slots if kind == "batch" else 0),
            filter_subject=subject,
        )
        consumer = _Consumer(
            subject=subject,
            durable=durable,
            config=config,
            decoder=TypeAdapter(event_type),  # a model or a union of models
            stats=self.stats.setdefault(durable, ConsumerStats()),
            deliveries=deliveries,
            failure_stage=stage or self.stage,
            kind=kind,
            slots=max(1, slots),
            handler=handler,
            flush_s=flush_s,
        )
        self._consumers.append(consumer)

    async def _subscribe(self, c: _Consumer) -> JetStreamContext.PullSubscription:
        """Bind to the durable consumer, creating it when it does not exist (yet or anymore)
        and updating it when it was declared with other settings (an older release's filter
        subject, delivery limits): nats-py binds to an existing durable as it is."""
        if c.sub is not None:
            with contextlib.suppress(Exception):
                await c.sub.unsubscribe()
        await self._update_consumer(c)
        c.sub = await self.js.pull_subscribe(
            c.subject, durable=c.durable, stream=self.subjects.stream, config=c.config
        )
        return c.sub

    async def _update_consumer(self, c: _Consumer) -> None:
        try:
            info = await self.js.consumer_info(self.subjects.stream, c.durable)
        except NotFoundError:
            return  # pull_subscribe creates it
        have, want = info.config, c.config
        drift = {
            name: (getattr(have, name), getattr(want, name))
            for name in _EDITABLE
            if getattr(have, name) != getattr(want, name)
        }
        if not drift:
            return
        try:
            await self.js.add_consumer(self.subjects.stream, want)  # create-or-update
        except Exception as exc:  # keep consuming with the settings it has
            log.warning(
                "consumer settings not updated",
                extra={"consumer": c.durable, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            return
        log.info(
            "consumer settings updated",
            extra={"consumer": c.durable, "changed": {k: str(v) for k, v in drift.items()}},
        )

    async def _ensure_consumer(
        self, c: _Consumer, sub: JetStreamContext.PullSubscription
    ) -> JetStreamContext.PullSubscription:
        try:
            await self.js.consumer_info(self.subjects.stream, c.durable)
            return sub
        except NotFoundError:
            log.warning("consumer vanished; declaring it again", extra={"consumer": c.durable})
        except Exception:  # NATS unreachable: the pull loop keeps retrying anyway
            return sub
        try:
            return await self._subscribe(c)
        except Exception:
            log.warning("consumer not declared", extra={"consumer": c.durable}, exc_info=True)
            return sub

    async def _pull(self, c: _Consumer) -> None:
        """Fetch as many messages as there are free slots and hand each to its own task.

        An idle consumer waits in a single-message pull, which returns the moment a message
        arrives (a pull for many waits out its timeout after the first one); while messages
        keep coming, it pulls for all free slots without waiting.
        """
        assert c.sub is not None
        sub = c.sub
        slots = _Slots(c.slots if c.kind == "one" else 1)
        backlog = False
        errors = idle = 0
        loop = asyncio.get_running_loop()
        pulled_at, pulled = 0.0, c.slots  # the last batch: when it came, and its size
        while self._running:
            free = await slots.take_all()
            if c.flush_s > 0 and pulled < c.slots:  # not full: let more events gather first
                rest = c.flush_s - (loop.time() - pulled_at)
                if rest > 0:
                    await asyncio.sleep(rest)
            want = c.slots if c.kind == "batch" else free
            msgs: list[Msg] = []
            try:
                if backlog and want > 1:
                    msgs = await sub.fetch(want, timeout=_BACKLOG_FETCH_S)
                else:
                    msgs = await sub.fetch(1, timeout=self.fetch_timeout_s)
                    if c.kind == "batch" and want > 1 and msgs[-1].metadata.num_pending > 0:
                        # More wait: they join this one's batch (one transaction, not two).
                        with contextlib.suppress(TimeoutError):
                            msgs += await sub.fetch(want - 1, timeout=_BACKLOG_FETCH_S)
                # The server tells how many more wait for this consumer: pull for several
                # only then, so a lone message is never held up by a half-empty batch.
                backlog = bool(msgs) and msgs[-1].metadata.num_pending > 0
                errors = idle = 0
            except TimeoutError:  # no message: nats-py raises asyncio's or its own subclass
                backlog = False
                idle += 1
                if idle % _IDLE_CHECKS == 0:  # a deleted consumer looks just like an idle one
                    sub = await self._ensure_consumer(c, sub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors += 1
                backlog = False
                (log.warning if errors == 1 else log.debug)(
                    "pull failed; retrying",
                    extra={"consumer": c.durable, "error": f"{type(exc).__name__}: {exc}"[:300]},
                )
                await asyncio.sleep(min(0.2 * errors, 2.0))
                if errors % 5 == 0:
                    sub = await self._ensure_consumer(c, sub)
            if not msgs:
                slots.give(free)
                continue
            if c.kind == "batch":
                pulled_at, pulled = loop.time(), len(msgs)
                self._spawn(c, self._handle_batch(c, msgs), slots, free)
                continue
            slots.give(free - len(msgs))
            for msg in msgs:
                self._spawn(c, self._handle_one(c, msg), slots, 1)

    def _spawn(self, c: _Consumer, work: Awaitable[None], slots: _Slots, held: int) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:  # an ack or DLQ publish failed: the message is redelivered
                log.warning("message handling failed", extra={"consumer": c.durable}, exc_info=True)

        task = asyncio.create_task(run())
        c.inflight.add(task)

        def done(t: asyncio.Task[None]) -> None:
            c.inflight.discard(t)
            slots.give(held)

        task.add_done_callback(done)

    async def _admit(self, c: _Consumer, msg: Msg) -> Event | None:
        """The decoded event, or None when the message was refused (dead-lettered, acked)."""
        if self._key is not None:
            refused = verify(self._key, msg.data, (msg.headers or {}).get(SIGNATURE_HEADER))
            if refused is not None:
                c.stats.rejected += 1
                log.warning(
                    "event refused: %s",
                    refused,
                    extra={"subject": msg.subject, "consumer": c.durable},
                )
                await self._refuse(c, msg, refused)
                return None
        try:
            event: Event = c.decoder.validate_json(msg.data)
        except ValidationError as exc:
            c.stats.malformed += 1
            reason = _malformed_reason(exc)
            log.error(
                "malformed event dead-lettered",
                extra={"subject": msg.subject, "consumer": c.durable, "error": reason},
            )
            await self._refuse(c, msg, reason)
            return None
        return event

    async def _refuse(self, c: _Consumer, msg: Msg, reason: str) -> None:
        c.stats.dead_lettered += 1
        await self.dead_letter(msg, durable=c.durable, reason=reason)
        await msg.ack()

    async def _handle_one(self, c: _Consumer, msg: Msg) -> None:
        event = await self._admit(c, msg)
        if event is None:
            return
        with bind_job(event.job_id), self._span(c, msg):
            if await self._drop_if_cancelled(event, c.durable, c.stats):
                await msg.ack()
                return
            await self._settle(c, msg, event)

    async def _handle_batch(self, c: _Consumer, msgs: list[Msg]) -> None:
        admitted: list[tuple[Msg, Event]] = []
        for msg in msgs:
            if (event := await self._admit(c, msg)) is not None:
                admitted.append((msg, event))
        if not admitted:
            return
        events = [event for _, event in admitted]
        try:
            # No consumer span: a batch mixes many jobs' traces (parenting it under the first
            # would mislead), and its queries, orphans then, are not sampled either. Recording
            # and projecting spent about a fifth of their CPU on those spans.
            with self._heartbeat([m for m, _ in admitted]), suppress_instrumentation():
                await c.handler(events)
        except Exception as exc:
            log.warning(
                "batch failed; handling its events one by one",
                extra={
                    "consumer": c.durable,
                    "events": len(events),
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
            )
            for msg, event in admitted:
                with bind_job(event.job_id):
                    await self._settle(c, msg, event)
            return
        c.stats.handled += len(admitted)
        for msg, _ in admitted:
            await msg.ack()

    async def _settle(self, c: _Consumer, msg: Msg, event: Event) -> None:
        """Run one event's handler (a batch handler with that event alone) and ack, retry or
        fail its message by the outcome."""
        attempt = msg.metadata.num_delivered
        try:
            with self._heartbeat([msg]):
                if c.kind == "batch":  # a failed batch's event alone: untraced as its batch
                    with suppress_instrumentation():
                        await c.handler([event])
                else:
                    await c.handler(event)
        except JobError as exc:
            if exc.retryable and attempt < c.deliveries:
                await self._retry(msg, attempt, c.durable, exc, c.stats)
                return
            # A retryable error that outlived its deliveries is a processing problem: keep a
            # copy in the DLQ. A permanent one (a 404, say) is just the job's fate.
            await self._fail(
                msg,
                event,
                c.failure_stage,
                exc.code,
                exc.message,
                c.durable,
                retryable=exc.retryable,
                dead_letter=exc.retryable,
            )
            c.stats.failed += 1
        except Exception as exc:
            if attempt < c.deliveries:
                await self._retry(msg, attempt, c.durable, exc, c.stats)
                return
            log.exception("handler failed on its last delivery", extra={"consumer": c.durable})
            await self._fail(
                msg,
                event,
                c.failure_stage,
                "internal_error",
                f"{type(exc).__name__}: {exc}"[:1000],
                c.durable,
                retryable=True,
                dead_letter=True,
            )
            c.stats.failed += 1
        else:
            c.stats.handled += 1
        await msg.ack()

    @contextlib.contextmanager
    def _span(self, c: _Consumer, msg: Msg) -> Iterator[None]:
        """A consumer span continuing the publisher's trace (when tracing is on)."""
        if self._tracer is None:
            yield
            return
        parent = propagate.extract(msg.headers or {})
        with self._tracer.start_as_current_span(
            f"{c.subject} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": c.durable,
            },
        ):
            yield

    @contextlib.contextmanager
    def _heartbeat(self, msgs: list[Msg]) -> Iterator[None]:
        """In-progress acks while a long handler runs, so its messages are not redelivered;
        started only once a handler outlives a third of ack_wait (most never do)."""
        interval = max(self.settings.ack_wait_s / 3, 0.5)
        started: list[asyncio.Task[None]] = []

        def begin() -> None:
            started.append(asyncio.create_task(_keep_alive(msgs, interval)))

        timer = asyncio.get_running_loop().call_later(interval, begin)
        try:
            yield
        finally:
            timer.cancel()
            for task in started:
                task.cancel()

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

    async def _retry(
        self, msg: Msg, attempt: int, durable: str, exc: Exception, stats: ConsumerStats
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
        await msg.nak(delay=delay)

    async def _fail(
        self,
        msg: Msg,
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


class _ProgressGate:
    """Which unconfirmed progress events go out. A fast job's stage would otherwise send ten
    percent steps within milliseconds, and every event costs its stream write and a decode in
    each consumer (the gateway, the monitor): progress was half of a job's events. Always sent:
    a job stage's first event and a new phase (the message's first word changes, as from
    "writing" to "revising"; the first named phase after a first event without one, such as
    the translator's "segment 1/2", is an update); other updates at most every `interval_s`,
    100 % included (the stage's result follows it at once and says as much)."""

    _REMEMBERED = 4096  # job stages in flight in this process, and more

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self.coalesced = 0

    def admit(self, event: JobProgress) -> bool:
        if self.interval_s <= 0:
            return True
        key = (event.job_id, event.stage.value)
        now = time.monotonic()
        phase = (event.message or "").split(" ", 1)[0]
        seen = self.last.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            if phase == seen[1]:
                self.coalesced += 1
                return False
            if not seen[1]:  # after the stage's first event, its first named phase is an update
                self.last[key] = (seen[0], phase)
                self.coalesced += 1
                return False
        self.last[key] = (now, phase)
        self.last.move_to_end(key)
        if len(self.last) > self._REMEMBERED:
            self.last.popitem(last=False)
        return True


async def _keep_alive(msgs: list[Msg], interval: float) -> None:
    while True:
        try:
            for msg in msgs:
                await msg.in_progress()
        except Exception:  # a lost heartbeat only risks a redelivery, which handlers tolerate
            log.debug("in-progress ack failed", exc_info=True)
        await asyncio.sleep(interval)


def _malformed_reason(exc: ValidationError) -> str:
    """`unsupported schema_version N` when that is what is wrong, else `malformed: ...`."""
    for error in exc.errors():
        message = str(error.get("msg", ""))
        if "unsupported schema_version" in message:
            return message.removeprefix("Value error, ")
    return f"malformed: {exc}"[:500]


def _nats_security(settings: ServiceSettings) -> SASLPlaintext | None:
    """This service's NATS user and password (NATS_USER, NATS_PASSWORD), when it has one."""
    if settings.nats_user is None:
        return None
    password = settings.nats_password.get_secret_value() if settings.nats_password else ""
    return SASLPlaintext(username=settings.nats_user, password=password)


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
