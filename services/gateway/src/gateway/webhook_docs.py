"""The webhooks the gateway sends, declared for the OpenAPI document's `webhooks` section (never
served as routes): one POST per event a job's `callback_events` chose, with its payload."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from .schemas import JOB_EXAMPLE, Job

router = APIRouter(tags=["webhooks"])

_HEADERS = (
    "Headers: `Seoblog-Delivery` (the delivery id, the same on every retry: drop the ones you "
    "have seen), `Seoblog-Timestamp` (Unix seconds) and `Seoblog-Signature: t=<timestamp>,"
    "v1=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` keyed with the webhook secret "
    "(admins read it at `GET /v1/webhooks/secret`). Answer any 2xx within "
    "GATEWAY_WEBHOOK_TIMEOUT_S; anything else is retried after each delay in "
    "GATEWAY_WEBHOOK_BACKOFF_S. Redirects are not followed."
)


class WebhookData(BaseModel):
    job: Job = Field(description="the job as `GET /v1/jobs/{id}` shows it at that moment")


def _example(kind: str, job: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "9a1f3c5e7b2d4f6a8c0e1b3d5f7a9c2e",
        "type": kind,
        "created_at": "2026-01-05T09:31:12Z",
        "data": {"job": JOB_EXAMPLE | job},
    }


_DONE = {"state": "completed", "post_id": "5b2e8c1f3a4d4e6f9a8b7c6d5e4f3a2b"}
_FAILED = {
    "state": "failed",
    "error": {"code": "not_found", "message": "The page returned HTTP 404", "stage": "crawl"},
}


class _Event(BaseModel):
    id: str = Field(description="the delivery id (also in `Seoblog-Delivery`)")
    created_at: datetime = Field(description="when the delivery was queued")
    data: WebhookData


class JobCompletedWebhook(_Event):
    model_config = ConfigDict(json_schema_extra={"examples": [_example("job.completed", _DONE)]})
    type: Literal["job.completed"]


class JobFailedWebhook(_Event):
    model_config = ConfigDict(json_schema_extra={"examples": [_example("job.failed", _FAILED)]})
    type: Literal["job.failed"]


class JobCancelledWebhook(_Event):
    model_config = ConfigDict(
        json_schema_extra={"examples": [_example("job.cancelled", {"state": "cancelled"})]}
    )
    type: Literal["job.cancelled"]


class JobProgressWebhook(_Event):
    model_config = ConfigDict(json_schema_extra={"examples": [_example("job.progress", {})]})
    type: Literal["job.progress"]


Delivery = Annotated[str, Header(alias="Seoblog-Delivery", description="the delivery id")]
Timestamp = Annotated[str, Header(alias="Seoblog-Timestamp", description="Unix seconds")]
Signature = Annotated[
    str, Header(alias="Seoblog-Signature", description="`t=<timestamp>,v1=<hex HMAC-SHA256>`")
]
_ANSWER: dict[int | str, dict[str, Any]] = {
    204: {"description": "received (any 2xx will do)"},
}


@router.post(
    "job.completed",
    summary="The job completed: its post is ready",
    description="Sent once when the job completes (also when the result cache answered it), "
    "if `callback_events` has `completed` (the default). " + _HEADERS,
    status_code=204,
    responses=_ANSWER,
)
def job_completed(
    body: JobCompletedWebhook, delivery: Delivery, timestamp: Timestamp, signature: Signature
) -> Response:
    raise NotImplementedError  # documentation only


@router.post(
    "job.failed",
    summary="The job failed",
    description="Sent once when the job fails, with `data.job.error` saying why, if "
    "`callback_events` has `failed` (the default). " + _HEADERS,
    status_code=204,
    responses=_ANSWER,
)
def job_failed(
    body: JobFailedWebhook, delivery: Delivery, timestamp: Timestamp, signature: Signature
) -> Response:
    raise NotImplementedError  # documentation only


@router.post(
    "job.cancelled",
    summary="The job was cancelled",
    description="Sent once when the job is cancelled, if `callback_events` has `cancelled` "
    "(the default). " + _HEADERS,
    status_code=204,
    responses=_ANSWER,
)
def job_cancelled(
    body: JobCancelledWebhook, delivery: Delivery, timestamp: Timestamp, signature: Signature
) -> Response:
    raise NotImplementedError  # documentation only


@router.post(
    "job.progress",
    summary="The job moved on",
    description="Only if `callback_events` has `progress`. Sent at once when the job enters a "
    "stage (crawling, translating, generating); progress within a stage is coalesced: at most "
    "one delivery per GATEWAY_WEBHOOK_PROGRESS_INTERVAL_S (5 s), sent at the end of that "
    "window with the latest progress, and dropped if a newer delivery (the next stage, or the "
    "end) comes first. Retries can still arrive late: order by `data.job.version`. " + _HEADERS,
    status_code=204,
    responses=_ANSWER,
)
def job_progress(
    body: JobProgressWebhook, delivery: Delivery, timestamp: Timestamp, signature: Signature
) -> Response:
    raise NotImplementedError  # documentation only
