"""/v1/jobs: submit jobs (one, or a batch), list, get, cancel, and follow them live."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, WebSocket, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from seoblog_contracts import (
    JobCancelled,
    JobSpec,
    JobState,
    JobSubmitted,
    new_event_id,
    stage_event_id,
)
from seoblog_netguard import BadHostname, hostname_problem
from seoblog_runtime import Parts
from seoblog_telemetry import bind_job, current_trace_id

from ..auth import Authenticator, Principal
from ..deps import (
    AppDep,
    CanRead,
    CanWrite,
    Gateway,
    HubDep,
    JobsDep,
    PartsDep,
    SettingsDep,
    WebhooksDep,
    key_of,
)
from ..errors import ApiError, validation_details
from ..handlers import announce, announce_job
from ..live import CLOSED, REVOKED, LiveHub, Snapshot
from ..schemas import (
    JOB_EXAMPLE,
    BatchItem,
    BatchRequest,
    BatchResponse,
    ErrorBody,
    ErrorResponse,
    HistoryEntry,
    Job,
    JobList,
    JobRequest,
    PostSummary,
    Progress,
    WebhookDeliveries,
    WebhookDelivery,
    callback_events_of,
    job_links,
)
from ..snapshots import JobCache, load_job
from ..store import DONE_PROGRESS, CachedResult, IdempotencyConflict, JobFilter, NewJob, PgJobStore

log = logging.getLogger("gateway.jobs")
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "no API key, or an unknown or revoked one"},
    403: {"model": ErrorResponse, "description": "the key lacks the scope"},
    429: {"model": ErrorResponse, "description": "rate limited; see Retry-After"},
}
_WRITE_ERRORS = _AUTH | {
    409: {"model": ErrorResponse, "description": "Idempotency-Key reused with another body"},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="the same key with the same body returns the original job (printable "
        "ASCII, up to 255 characters)",
        examples=["order-4711-attempt"],
    ),
]


def _bus_connected(parts: Parts[PgJobStore]) -> bool:
    try:
        return bool(parts.bus.nc.is_connected)
    except Exception:  # not connected yet (start-up waits for NATS)
        return False


def request_key(spec: JobSpec) -> str:
    """What identifies a result: everything in the spec that changes the post (not its
    priority), normalized, hashed."""
    fields = {
        "url": str(spec.url),
        "keywords": spec.keywords,
        "target_language": spec.target_language.lower(),
        "length": spec.length,
    }
    if overrides := [a.overrides for a in spec.experiments if a.overrides]:
        fields["overrides"] = overrides  # a variant's post is not the control's
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


async def _submit(
    app: AppDep,
    who: Principal,
    request: JobRequest,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """Create and queue one job; (job, replayed) where replayed means an earlier request
    with the same idempotency key created it.

    A submit is either queued or leaves nothing behind: with the bus known to be down,
    nothing is written (503); once the row is written the job is queued, and an event the
    stream does not confirm is published again by the relay."""
    parts, settings, webhooks = app.parts, app.settings, app.webhooks
    host = request.url.host or ""
    if (problem := hostname_problem(host)) is not None:  # else the crawler finds out, later
        raise ApiError(422, "bad_url", f"url: {BadHostname(host, problem)}")
    callback = str(request.callback_url) if request.callback_url else None
    if callback:
        await webhooks.addresses.check(callback)
    spec = request.spec()
    job_id = new_event_id()
    if app.experiments is not None:  # once, here: the spec carries it to every stage
        spec = app.experiments.assign(job_id, spec)
    max_age = settings.result_cache_max_age_s if request.max_age is None else request.max_age
    key = request_key(spec)
    # Without the bus nothing is written, unless the result cache answers the request.
    if not _bus_connected(parts) and (
        max_age <= 0 or await parts.store.cached_result(key, max_age) is None
    ):
        raise _bus_unavailable()
    event = JobSubmitted(job_id=job_id, spec=spec)
    new = NewJob(
        job_id,
        spec,
        event.event_id,
        event.occurred_at,
        current_trace_id(),
        who.key_id,
        callback,
        request_key=key,
        publish_after_s=settings.relay_after_s,
        callback_events=request.callback_events,
    )
    store = parts.store
    with bind_job(job_id):
        if idempotency_key is not None:
            body_hash = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
            try:
                original, cached = await store.create_job_once(
                    new, idempotency_key, body_hash, max_age
                )
            except IdempotencyConflict as exc:
                raise ApiError(
                    409,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request body.",
                ) from exc
            if original is not None:
                found = await load_job(store, original)
                assert found is not None
                return found[0], True
        else:
            cached = await store.create_job(new, max_age)
        if cached is not None:
            log.info(
                "job answered from the result cache", extra={"cached_from": cached.source_job_id}
            )
            done = _job(new, "completed", cached)
            await announce_job(app.jobs, app.hub, webhooks, done, who.key_id)
            return done, False
        try:
            # asyncio.timeout, not wait_for: no task of its own for every submit.
            async with asyncio.timeout(settings.publish_timeout_s):
                await parts.bus.publish(event)
        except Exception:
            # It may have reached the stream; the job stays queued and the relay publishes it
            # again under the same id (the stream keeps one), so a retry finds this job.
            log.warning(
                "submitted event not confirmed; the relay will publish it again", exc_info=True
            )
        else:
            app.relay.confirmed(job_id)
        log.info("job submitted", extra={"url": str(spec.url)})
    return _job(new, "queued", None), False


def _job(new: NewJob, state: str, cached: CachedResult | None) -> Job:
    """What the store now holds, built from what we wrote instead of read back (the spec
    is not encoded and decoded again)."""
    post = None if cached is None else cached.post
    history = [HistoryEntry(state=JobState.QUEUED, at=new.at)]
    if post is not None:
        history.append(
            HistoryEntry(state=JobState.COMPLETED, at=new.at + timedelta(microseconds=1))
        )
    return Job(
        id=new.job_id,
        state=JobState(state),
        spec=new.spec,
        created_at=new.at,
        updated_at=new.at,
        version=1 if post is None else 2,
        progress=None if post is None else Progress.model_validate(DONE_PROGRESS),
        history=history,
        trace_id=new.trace_id,
        callback_url=new.callback_url,
        callback_events=callback_events_of(new.callback_url, new.callback_events),
        post_id=None if post is None else post.post_id,
        post=None if post is None else PostSummary.of(post),
        cached_from=None if cached is None else cached.source_job_id,
        links=job_links(new.job_id, None if post is None else post.post_id),
    )


def _bus_unavailable() -> ApiError:
    return ApiError(
        503,
        "bus_unavailable",
        "The job queue is unavailable; nothing was created. Please retry.",
        **{"Retry-After": "2"},
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=_WRITE_ERRORS
    | {200: {"model": Job, "description": "replayed: the job this Idempotency-Key created"}},
    summary="Submit a job",
    description="Accepts a URL with keywords, target language, length and priority; the job "
    "runs in the background. Follow it at `links.self` or live at `links.events`. "
    "Needs the `jobs:write` scope.",
)
async def submit_job(
    request: JobRequest,
    who: CanWrite,
    http: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    state = http.app.state  # not AppDep: each dependency costs per request, on the hot path
    auth: Authenticator = state.auth
    app: Gateway = state.gateway
    await auth.charge_jobs(who, 1)
    job, replayed = await _submit(app, who, request, idempotency_key)
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    # The job is ours and valid: encoded as it is, not re-validated against the model.
    return Response(
        job.model_dump_json(),
        status_code=status.HTTP_200_OK if replayed else status.HTTP_202_ACCEPTED,
        media_type="application/json",
        headers=headers,
    )


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses=_AUTH | {413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    summary="Submit many jobs at once",
    description="Each item is validated and queued on its own: the answer lists, in order, "
    "a 202 with the job or the item's error. At most GATEWAY_MAX_BATCH items. Each item "
    "takes one job of the key's jobs quota (GATEWAY_JOBS_PER_S, GATEWAY_JOBS_BURST), all "
    "before any is queued: a 429 `jobs_rate_limited` with Retry-After queues none. "
    "Needs the `jobs:write` scope.",
)
async def submit_batch(
    batch: BatchRequest,
    who: CanWrite,
    app: AppDep,
    http: Request,
) -> BatchResponse:
    settings = app.settings
    if len(batch.jobs) > settings.max_batch:
        raise ApiError(
            422,
            "batch_too_large",
            f"A batch holds at most {settings.max_batch} jobs; this one has {len(batch.jobs)}.",
        )
    # Every item costs one job of the key's quota, all taken before anything is queued.
    auth: Authenticator = http.app.state.auth
    await auth.charge_jobs(who, len(batch.jobs))
    results: list[BatchItem] = []
    for index, item in enumerate(batch.jobs):
        try:
            request = JobRequest.model_validate(item)
            job, _ = await _submit(app, who, request, None)
            results.append(BatchItem(index=index, status=202, job=job))
        except ValidationError as exc:
            details = validation_details(exc.errors())
            results.append(
                BatchItem(
                    index=index,
                    status=422,
                    error=ErrorBody(
                        code="invalid_request", message=details[0]["message"], details=details
                    ),
                )
            )
        except ApiError as exc:
            results.append(
                BatchItem(
                    index=index,
                    status=exc.status,
                    error=ErrorBody(code=exc.code, message=exc.message),
                )
            )
    accepted = sum(1 for r in results if r.job is not None)
    return BatchResponse(accepted=accepted, rejected=len(results) - accepted, results=results)


def _cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, item_id = json.loads(raw)
        return datetime.fromisoformat(when), str(item_id)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "invalid_cursor", "cursor is not one this API gave out.") from exc


def next_cursor(created_at: datetime, item_id: str) -> str:
    return _cursor(created_at, item_id)


@router.get(
    "",
    response_model=JobList,
    responses=_AUTH | {422: {"model": ErrorResponse}},
    summary="List jobs, newest first",
    description="Filters combine: `state` (repeatable), `created_after` / `created_before` "
    "(ISO 8601), `q` (a word in the URL or the keywords). Pages are `limit` long; pass "
    "`next_cursor` back as `cursor`. A key sees the jobs it submitted; an admin sees all. "
    "Needs the `jobs:read` scope.",
)
async def list_jobs(
    who: CanRead,
    parts: PartsDep,
    state: Annotated[list[JobState] | None, Query(examples=[["completed"]])] = None,
    created_after: Annotated[datetime | None, Query(examples=["2026-01-01T00:00:00Z"])] = None,
    created_before: Annotated[datetime | None, Query()] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, examples=["productivity"])] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> JobList:
    where = JobFilter(
        owner=who.owner_filter,
        states=tuple(s.value for s in state or ()),
        created_after=created_after,
        created_before=created_before,
        keyword=q,
    )
    rows = await parts.store.jobs(where, after=parse_cursor(cursor), limit=limit + 1)
    page = rows[:limit]
    jobs = [Job.from_row(r, None) for r in page]
    more = len(rows) > limit
    return JobList(
        data=jobs,
        next_cursor=next_cursor(page[-1]["created_at"], page[-1]["job_id"]) if more else None,
    )


async def _visible_job(jobs: JobCache, who: Principal, job_id: str) -> Job:
    found = await jobs.get(job_id)
    if found is None or not who.may_see(found[1]):
        raise ApiError(404, "job_not_found", f"No job with id {job_id!r}.")
    return found[0]


@router.get(
    "/{job_id}",
    response_model=Job,
    responses=_AUTH | _NOT_FOUND,
    summary="Get a job: state, progress, history, error, and the post when done",
    description="Needs the `jobs:read` scope.",
)
async def get_job(job_id: str, who: CanRead, jobs: JobsDep) -> Response:
    # The hot path of polling clients: the cached job's JSON as it is, not re-validated
    # against the response model on every request.
    job = await _visible_job(jobs, who, job_id)
    return Response(jobs.body(job), media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=_AUTH
    | _NOT_FOUND
    | {
        409: {
            "model": ErrorResponse,
            "description": "the job already ended (`job_already_finished`)",
            "content": {
                "application/json": {
                    "example": {
                        "error": {
                            "code": "job_already_finished",
                            "message": "The job already completed; there is nothing to cancel.",
                        }
                    }
                }
            },
        },
        503: {"model": ErrorResponse},
    },
    summary="Cancel a job",
    description="The job becomes `cancelled` at once; the stages drop its remaining work and "
    "no post is kept. A job that already ended answers 409. Needs the `jobs:write` scope.",
)
async def cancel_job(
    job_id: str, who: CanWrite, parts: PartsDep, jobs: JobsDep, hub: HubDep, webhooks: WebhooksDep
) -> Job:
    job = await _visible_job(jobs, who, job_id)
    if job.state.terminal:
        raise _already_finished(job.state)
    event = JobCancelled(
        event_id=stage_event_id(job_id, "cancelled"), job_id=job_id, reason="cancelled by the user"
    )
    with bind_job(job_id):
        try:
            await parts.bus.publish(event)
        except Exception as exc:
            log.exception("could not publish the cancellation")
            raise ApiError(
                503, "bus_unavailable", "The job could not be cancelled; please retry."
            ) from exc
        changed = await parts.store.apply(event)
        await announce(jobs, hub, webhooks, job_id, changed=changed)
        log.info("job cancelled")
    job = await _visible_job(jobs, who, job_id)  # fresh: announce re-read it
    if job.state != JobState.CANCELLED:
        raise _already_finished(job.state)  # it ended while we cancelled
    return job


def _already_finished(state: JobState) -> ApiError:
    return ApiError(
        409,
        "job_already_finished",
        f"The job already {state.value}; there is nothing to cancel.",
    )


@router.get(
    "/{job_id}/webhooks",
    response_model=WebhookDeliveries,
    responses=_AUTH | _NOT_FOUND,
    summary="The job's webhook deliveries and their attempts",
    description="Needs the `jobs:read` scope.",
)
async def job_webhooks(
    job_id: str, who: CanRead, parts: PartsDep, jobs: JobsDep
) -> WebhookDeliveries:
    await _visible_job(jobs, who, job_id)
    rows = await parts.store.webhooks_of(job_id)
    return WebhookDeliveries(data=[WebhookDelivery.model_validate(r) for r in rows])


# -- live ------------------------------------------------------------------------------------

SSE_EXAMPLE = (
    "retry: 2000\n\n"
    f"id: 4\nevent: job\ndata: {json.dumps(JOB_EXAMPLE)}\n\n"
    ": heartbeat\n\n"
    'id: 7\nevent: job\ndata: {"id": "...", "state": "completed", ...}\n\n'
    "event: end\ndata: {}\n\n"
)


KEY_REVOKED_FRAME = (
    "event: error\ndata: "
    + json.dumps({"code": "key_revoked", "message": "The API key of this stream was revoked."})
    + "\n\n"
)


def _frame(snapshot: Snapshot) -> str:
    return f"id: {snapshot['version']}\nevent: job\ndata: {json.dumps(snapshot, default=str)}\n\n"


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses=_AUTH
    | _NOT_FOUND
    | {
        200: {
            "description": "Server-Sent Events: `job` events (the whole job, `id` = its "
            "version), `: heartbeat` comments, and `end` once the job has finished",
            "content": {"text/event-stream": {"example": SSE_EXAMPLE}},
        }
    },
    summary="Follow a job live (Server-Sent Events)",
    description="Sends the job now, then on every change, and `end` when it has finished (a "
    "finished job's stream ends at once). Reconnect with `Last-Event-ID` to skip what you "
    "have seen. Browsers may pass the key as `?api_key=`. The key is checked again every "
    "GATEWAY_LIVE_RECHECK_S: once revoked, the stream ends with `event: error`, data "
    '`{"code": "key_revoked"}`. Needs the `jobs:read` scope.',
)
async def job_events(
    job_id: str,
    who: CanRead,
    parts: PartsDep,
    jobs: JobsDep,
    hub: HubDep,
    settings: SettingsDep,
    http: Request,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=20, examples=["4"])
    ] = None,
    api_key: Annotated[
        str | None, Query(max_length=200, description="for EventSource, which sends no headers")
    ] = None,
) -> StreamingResponse:
    await _visible_job(jobs, who, job_id)
    seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=16)
    auth: Authenticator = http.app.state.auth
    key = key_of(http)
    beat_s, recheck_s = settings.live_heartbeat_s, settings.live_recheck_s

    async def stream() -> AsyncIterator[str]:
        last = seen
        async with hub.listen(queue, job_id):
            yield "retry: 2000\n\n"
            # Read after listening, so a change in between is not lost.
            found = await load_job(parts.store, job_id)
            if found is None:
                return
            current = found[0].model_dump(mode="json")
            beat = checked = time.monotonic()
            while True:
                if current is CLOSED:
                    return  # the server is stopping: no `end`, so the client reconnects
                if current is REVOKED:
                    yield KEY_REVOKED_FRAME
                    return
                if current["version"] > last:
                    last = current["version"]
                    yield _frame(current)
                if current["state"] in ("completed", "failed", "cancelled"):
                    yield "event: end\ndata: {}\n\n"
                    return
                now = time.monotonic()
                if now - checked >= recheck_s:
                    checked = now  # cached in the authenticator: no lookup per stream
                    if not await auth.still_valid(key):
                        current = REVOKED
                        continue
                wait = max(0.0, min(beat + beat_s, checked + recheck_s) - now)
                try:
                    current = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    if time.monotonic() - beat >= beat_s:
                        yield ": heartbeat\n\n"
                        beat = time.monotonic()
                    current = {"version": -1, "state": ""}

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/live")
async def follow_jobs(websocket: WebSocket) -> None:
    """One WebSocket following many jobs. Send `{"follow": [ids]}` or `{"unfollow": [ids]}`;
    receive `{"type": "job", "job": {...}}` at once and on every change, `{"type": "ping"}`
    heartbeats and `{"type": "error", "code", "message", "job_id"?}`. `?jobs=a,b` follows
    from the start; `?api_key=` for browsers.

    Each message spends a token of the key's bucket: over it, an error `rate_limited` with
    `retry_after` (seconds) and the message is dropped; WS_STRIKES of them in a row close the
    socket with 4429. A revoked key's socket closes with 4401 `key_revoked` within
    GATEWAY_LIVE_RECHECK_S."""
    app = websocket.app
    auth: Authenticator = app.state.auth
    hub: LiveHub = app.state.hub
    store: PgJobStore = app.state.parts.store
    settings = app.state.settings
    header = websocket.headers.get("authorization", "")
    # `?api_key=` arrives as X-API-Key (limits.KeyFromQuery).
    key = header.removeprefix("Bearer ").strip() or websocket.headers.get("x-api-key")
    client = websocket.client.host if websocket.client else None
    try:
        who = await auth.principal(key or None, client)
        if not who.can("jobs:read"):
            raise ApiError(403, "insufficient_scope", "This API key lacks the 'jobs:read' scope.")
        await auth.limit(who)
    except ApiError as exc:
        # Accept, then close with 4401/4403: browsers see a close code, not an HTTP status.
        await websocket.accept()
        await websocket.close(code=4000 + exc.status, reason=exc.code)
        return
    await websocket.accept()
    queue: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=256)
    versions: dict[str, int] = {}

    async def follow(ids: list[Any]) -> None:
        for job_id in [str(i) for i in ids][:100]:
            if len(versions) >= 1000:
                await queue.put(_ws_error("too_many_jobs", "Follow at most 1000 jobs.", job_id))
                return
            hub.follow(queue, job_id)  # before reading, so no change falls in between
            found = await load_job(store, job_id)
            if found is None or not who.may_see(found[1]):
                hub.unfollow(queue, job_id)
                await queue.put(_ws_error("job_not_found", f"No job with id {job_id!r}.", job_id))
                continue
            versions.setdefault(job_id, 0)
            await queue.put(found[0].model_dump(mode="json"))

    async def read() -> None:
        strikes = 0
        while True:
            try:
                message = await websocket.receive_json()
            except (ValueError, KeyError):
                message = None
            try:
                await auth.limit(who)
                strikes = 0
            except ApiError as exc:
                strikes += 1
                if strikes >= WS_STRIKES:
                    raise _Abusive from None
                error = _ws_error("rate_limited", exc.message)
                error["retry_after"] = int(exc.headers.get("Retry-After", "1"))
                await queue.put(error)
                continue
            if message is None:
                await queue.put(_ws_error("invalid_message", 'Send {"follow": [job ids]}.'))
                continue
            if not isinstance(message, dict):
                await queue.put(_ws_error("invalid_message", 'Send {"follow": [job ids]}.'))
                continue
            if isinstance(message.get("follow"), list):
                await follow(message["follow"])
            if isinstance(message.get("unfollow"), list):
                ids = [str(i) for i in message["unfollow"]]
                hub.unfollow(queue, *ids)
                for job_id in ids:
                    versions.pop(job_id, None)

    async def write() -> None:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), settings.live_heartbeat_s)
            except TimeoutError:
                await websocket.send_json({"type": "ping"})
                continue
            if item is CLOSED:
                await websocket.close(code=1012)  # service restart: reconnect
                return
            if item.get("type") == "error":
                await websocket.send_json(item)
                continue
            job_id = item["id"]
            if job_id not in versions or item["version"] <= versions[job_id]:
                continue
            versions[job_id] = item["version"]
            await websocket.send_json({"type": "job", "job": item})
            if item["state"] in ("completed", "failed", "cancelled"):
                hub.unfollow(queue, job_id)  # it will not change again

    async def watch() -> None:
        """Returns once the key is revoked (checked every GATEWAY_LIVE_RECHECK_S, cached)."""
        while True:
            if not await auth.still_valid(key or None):
                return
            await asyncio.sleep(settings.live_recheck_s)

    async with hub.listen(queue):
        first = websocket.query_params.get("jobs")
        if first:
            await follow([j for j in first.split(",") if j])
        watcher = asyncio.create_task(watch())
        tasks = [asyncio.create_task(read()), asyncio.create_task(write()), watcher]
        close: tuple[int, str] | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if task is watcher and error is None:
                    close = (4401, "key_revoked")
                elif isinstance(error, _Abusive):
                    close = (4429, "rate_limited")
                elif error is not None and not isinstance(
                    error, WebSocketDisconnect | RuntimeError
                ):
                    log.warning("websocket ended with an error", exc_info=error)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if close is not None:
            with contextlib.suppress(Exception):  # the client may be gone already
                await websocket.close(code=close[0], reason=close[1])


# Messages over the key's rate in a row before a WebSocket is closed with 4429.
WS_STRIKES = 20


class _Abusive(Exception):
    """A WebSocket kept sending over its key's rate limit."""


def _ws_error(code: str, message: str, job_id: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if job_id is not None:
        error["job_id"] = job_id
    return error
