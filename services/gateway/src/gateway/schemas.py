"""The gateway's public JSON shapes (requests, responses, errors), documented in OpenAPI with
an example each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator
from pydantic.json_schema import SkipJsonSchema

from seoblog_contracts import Assignment, JobSpec, JobState, PostGenerated, SeoReport, Usage

JOB_ID = "0f8c2d7e9b1a4c3d8e7f6a5b4c3d2e1f"
POST_ID = "5b2e8c1f3a4d4e6f9a8b7c6d5e4f3a2b"
WHEN = "2026-01-05T09:30:00Z"

SPEC_EXAMPLE: dict[str, Any] = {
    "url": "https://example.com/blog/some-article",
    "keywords": ["remote work", "productivity"],
    "target_language": "ko",
    "length": 800,
    "priority": "normal",
}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


CallbackEvent = Literal["completed", "failed", "cancelled", "progress"]
# What a callback gets when the request does not say: how jobs ended, as before.
DEFAULT_CALLBACK_EVENTS: tuple[CallbackEvent, ...] = ("completed", "failed", "cancelled")
_EVENT_ORDER: tuple[CallbackEvent, ...] = ("progress", "completed", "failed", "cancelled")


class NoNul(BaseModel):
    """PostgreSQL text cannot hold NUL characters: refuse them as bad input, not a 500."""

    @model_validator(mode="after")
    def _no_nul(self) -> Any:
        if any("\x00" in s for s in _strings(self.model_dump(mode="json"))):
            raise ValueError("text must not contain NUL characters")
        return self


_SPEC_FIELDS = tuple(JobSpec.model_fields)


class JobRequest(JobSpec, NoNul):
    """A job to run; unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [SPEC_EXAMPLE | {"callback_url": "https://hooks.example.com/seoblog"}]
        },
    )

    callback_url: HttpUrl | None = Field(
        None,
        max_length=2048,
        description="POSTed a signed webhook for each event in `callback_events`",
    )
    callback_events: list[CallbackEvent] | None = Field(
        None,
        min_length=1,
        max_length=4,
        description="which events the callback gets: `completed`, `failed`, `cancelled` "
        "(the default is these three) and `progress` (each stage change, and within a "
        "stage at most one every GATEWAY_WEBHOOK_PROGRESS_INTERVAL_S). Needs `callback_url`",
        examples=[["completed", "failed", "progress"]],
    )

    # Variants are the gateway's to assign (GET /v1/experiments): a client naming its own, with
    # overrides choosing a model or a prompt, would bypass the admin scope and the guardrails.
    experiments: SkipJsonSchema[list[Assignment]] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_variants_from_clients(cls, data: Any) -> Any:
        if isinstance(data, dict) and "experiments" in data:
            raise ValueError(
                "experiments are assigned by the gateway (see /v1/experiments); leave the field out"
            )
        return data

    @model_validator(mode="after")
    def _events_need_a_callback(self) -> Any:
        if self.callback_events is not None:
            if self.callback_url is None:
                raise ValueError("callback_events needs a callback_url")
            chosen = set(self.callback_events)
            self.callback_events = [e for e in _EVENT_ORDER if e in chosen]
        return self

    max_age: float | None = Field(
        None,
        ge=0,
        le=365 * 86400,
        description="seconds: reuse the post of an identical request (same URL, keywords, "
        "language and length) that completed at most this long ago, instead of running the "
        "pipeline; the job is then created `completed` with `cached_from` set. 0 always "
        "runs the pipeline; unset uses the server's default (GATEWAY_RESULT_CACHE_MAX_AGE_S)",
        examples=[3600],
    )

    def spec(self) -> JobSpec:
        # Validated once: these are JobSpec's own fields, already through its validators.
        return JobSpec.model_construct(**{name: getattr(self, name) for name in _SPEC_FIELDS})


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "jobs": [
                        SPEC_EXAMPLE,
                        SPEC_EXAMPLE | {"url": "https://example.com/blog/another", "length": 500},
                    ]
                }
            ]
        },
    )

    jobs: list[dict[str, Any]] = Field(
        min_length=1,
        description="each item is a job request (see JobRequest), validated on its own; the "
        "largest batch is GATEWAY_MAX_BATCH",
    )


class Progress(BaseModel):
    stage: str
    percent: int
    message: str = ""


class HistoryEntry(BaseModel):
    state: JobState
    at: datetime


class JobError(BaseModel):
    code: str
    message: str
    stage: str | None = None
    retryable: bool = False


class PostSummary(BaseModel):
    id: str
    title: str
    slug: str
    language: str
    writer: str
    seo: SeoReport
    usage: Usage

    @classmethod
    def of(cls, post: PostGenerated) -> PostSummary:
        return cls(
            id=post.post_id,
            title=post.title,
            slug=post.slug,
            language=post.language,
            writer=post.writer,
            seo=post.seo,
            usage=post.usage,
        )


JOB_EXAMPLE: dict[str, Any] = {
    "id": JOB_ID,
    "state": "translating",
    "spec": SPEC_EXAMPLE,
    "created_at": WHEN,
    "updated_at": WHEN,
    "version": 4,
    "progress": {"stage": "translate", "percent": 50, "message": "2 of 4 segments"},
    "history": [
        {"state": "queued", "at": WHEN},
        {"state": "crawling", "at": WHEN},
        {"state": "translating", "at": WHEN},
    ],
    "error": None,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "callback_url": None,
    "post_id": None,
    "cached_from": None,
    "post": None,
    "links": {"self": f"/v1/jobs/{JOB_ID}", "events": f"/v1/jobs/{JOB_ID}/events", "post": None},
}


class Job(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: str
    state: JobState
    spec: JobSpec
    created_at: datetime
    updated_at: datetime
    version: int = Field(1, description="grows with every change; the SSE event id")
    progress: Progress | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    error: JobError | None = None
    trace_id: str | None = None
    callback_url: str | None = None
    callback_events: list[CallbackEvent] | None = Field(
        None, description="the events the callback gets (set when `callback_url` is)"
    )
    post_id: str | None = None
    post: PostSummary | None = None
    cached_from: str | None = Field(
        None,
        description="set when the result came from the result cache: the job that made the "
        "post this job has a copy of (see `max_age`)",
    )
    links: dict[str, str | None]

    @classmethod
    def from_row(cls, row: dict[str, Any], post: PostGenerated | None) -> Job:
        job_id = row["job_id"]
        return cls(
            id=job_id,
            state=JobState(row["state"]),
            spec=JobSpec.model_validate_json(row["spec"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            version=row.get("version") or 1,
            progress=json.loads(row["progress"]) if row["progress"] else None,
            history=row["history"],
            error=json.loads(row["error"]) if row["error"] else None,
            trace_id=row["trace_id"],
            callback_url=row.get("callback_url"),
            callback_events=callback_events_of(row.get("callback_url"), row.get("callback_events")),
            post_id=row["post_id"],
            cached_from=row.get("cached_from"),
            post=None if post is None else PostSummary.of(post),
            links=job_links(job_id, row["post_id"]),
        )


def job_links(job_id: str, post_id: str | None) -> dict[str, str | None]:
    return {
        "self": f"/v1/jobs/{job_id}",
        "events": f"/v1/jobs/{job_id}/events",
        "post": f"/v1/posts/{post_id}" if post_id else None,
    }


def callback_events_of(
    callback_url: str | None, events: Sequence[str] | None
) -> list[CallbackEvent] | None:
    """The events a job's callback gets: none without a callback, else the chosen ones or the
    default three."""
    if not callback_url:
        return None
    return list(cast("Sequence[CallbackEvent]", events or DEFAULT_CALLBACK_EVENTS))


class JobList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"data": [JOB_EXAMPLE], "next_cursor": "MjAyNi0wMS0wNVQwOTozMDowMHw"}]
        }
    )

    data: list[Job]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class ErrorBody(BaseModel):
    code: str = Field(description="stable, machine-readable")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "url: URL scheme should be 'http' or 'https'",
                    }
                }
            ]
        }
    )

    error: ErrorBody


class BatchItem(BaseModel):
    index: int
    status: int = Field(description="202 accepted, or the error's HTTP status")
    job: Job | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "rejected": 1,
                    "results": [
                        {"index": 0, "status": 202, "job": JOB_EXAMPLE | {"state": "queued"}},
                        {
                            "index": 1,
                            "status": 422,
                            "error": {
                                "code": "invalid_request",
                                "message": "url: Input should be a valid URL",
                            },
                        },
                    ],
                }
            ]
        }
    )

    accepted: int
    rejected: int
    results: list[BatchItem]


POST_EXAMPLE: dict[str, Any] = {
    "id": POST_ID,
    "job_id": JOB_ID,
    "source_url": "https://example.com/blog/some-article",
    "language": "ko",
    "requested_language": "ko",
    "title": "원격 근무의 생산성: 5가지 방법",
    "slug": "remote-work-productivity",
    "meta_description": "원격 근무에서 생산성을 높이는 다섯 가지 방법.",
    "keywords": ["remote work", "productivity"],
    "markdown": "원격 근무는 ...\n\n## 첫째\n\n...",
    "html": "<p>원격 근무는 ...</p><h2>첫째</h2><p>...</p>",
    "seo": {"score": 86, "checks": {"keyword_in_title": True}, "reasons": []},
    "writer": "llm:gpt-4o-mini",
    "usage": {"prompt_tokens": 5120, "completion_tokens": 1400, "calls": 3, "cost_usd": 0.0016},
    "created_at": WHEN,
}


class Post(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [POST_EXAMPLE]})

    id: str
    job_id: str
    source_url: str
    language: str = Field(description="the language the post is written in")
    requested_language: str | None = Field(
        None,
        description="the target_language the job asked for; differs from `language` when the "
        "writer could not write in it (the offline writer keeps the article's language)",
    )
    title: str
    slug: str
    meta_description: str
    keywords: list[str]
    markdown: str
    html: str
    seo: SeoReport
    writer: str
    usage: Usage
    created_at: datetime
    experiments: list[Assignment] = Field(
        default_factory=list, description="the job's experiment variants (see /v1/experiments)"
    )
    revised: bool = Field(False, description="a revision pass ran (the first draft scored low)")

    @classmethod
    def from_event(cls, event: PostGenerated) -> Post:
        return cls(
            id=event.post_id,
            job_id=event.job_id,
            source_url=event.source_url,
            language=event.language,
            requested_language=event.requested_language,
            title=event.title,
            slug=event.slug,
            meta_description=event.meta_description,
            keywords=event.keywords,
            markdown=event.markdown,
            html=event.html,
            seo=event.seo,
            writer=event.writer,
            usage=event.usage,
            created_at=event.occurred_at,
            experiments=event.experiments,
            revised=event.revised,
        )


class PostSource(BaseModel):
    """The article a post was written from, as the crawler stored it (plain text)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "post_id": "01JH2Q8Z6N4W0XKX2M3V9B7C5D",
                    "url": "https://example.com/remote-work",
                    "final_url": "https://example.com/remote-work",
                    "title": "Remote work, five years on",
                    "text": "Five years after offices emptied, ...",
                    "language": "en",
                    "fetched_at": "2026-01-01T12:00:00+00:00",
                    "exact": True,
                }
            ]
        }
    )

    post_id: str
    url: str = Field(description="the URL as crawled (normalised)")
    final_url: str = Field(description="where redirects ended")
    title: str
    text: str = Field(description="the extracted article text, as the writer received it")
    language: str | None = Field(None, description="the article's language, as detected")
    fetched_at: str = Field(
        description="when the job's crawl was recorded (`exact`), else when the crawler last "
        "fetched or confirmed the page"
    )
    exact: bool = Field(
        False,
        description="true: the very text the job's crawl extracted; false: the latest stored "
        "copy of the URL (the crawler has no record of the job; a re-crawl may have changed it)",
    )


class PostListItem(BaseModel):
    id: str
    job_id: str
    title: str
    slug: str
    language: str
    meta_description: str
    keywords: list[str]
    seo_score: int
    writer: str
    created_at: datetime
    rank: float | None = Field(None, description="relevance to `q` (search only)")
    links: dict[str, str]

    @classmethod
    def from_event(cls, event: PostGenerated, rank: float | None) -> PostListItem:
        return cls(
            id=event.post_id,
            job_id=event.job_id,
            title=event.title,
            slug=event.slug,
            language=event.language,
            meta_description=event.meta_description,
            keywords=event.keywords,
            seo_score=event.seo.score,
            writer=event.writer,
            created_at=event.occurred_at,
            rank=rank,
            links={"self": f"/v1/posts/{event.post_id}", "job": f"/v1/jobs/{event.job_id}"},
        )


class PostList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "id": POST_ID,
                            "job_id": JOB_ID,
                            "title": POST_EXAMPLE["title"],
                            "slug": POST_EXAMPLE["slug"],
                            "language": "ko",
                            "meta_description": POST_EXAMPLE["meta_description"],
                            "keywords": ["remote work", "productivity"],
                            "seo_score": 86,
                            "writer": "llm:gpt-4o-mini",
                            "created_at": WHEN,
                            "rank": 0.6,
                            "links": {"self": f"/v1/posts/{POST_ID}", "job": f"/v1/jobs/{JOB_ID}"},
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    data: list[PostListItem]
    next_cursor: str | None = None


Scope = Literal["jobs:write", "jobs:read", "admin"]


class KeyRequest(NoNul):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "ci pipeline", "scopes": ["jobs:write", "jobs:read"]}]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    rate_per_s: float | None = Field(
        None, gt=0, le=10_000, description="requests a second; default GATEWAY_RATE_PER_S"
    )
    burst: int | None = Field(
        None, ge=1, le=100_000, description="bucket size; default GATEWAY_RATE_BURST"
    )


KEY_EXAMPLE: dict[str, Any] = {
    "id": "key_3f9a1c2b7d4e5f60",
    "name": "ci pipeline",
    "hint": "sk_seo_AbC…xyz",
    "scopes": ["jobs:write", "jobs:read"],
    "rate_per_s": None,
    "burst": None,
    "created_at": WHEN,
    "revoked_at": None,
}


class ApiKey(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [KEY_EXAMPLE]})

    id: str
    name: str
    hint: str = Field(description="the key's prefix and last characters; the key is not stored")
    scopes: list[str]
    rate_per_s: float | None = None
    burst: int | None = None
    created_at: datetime
    revoked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(
            id=row["key_id"],
            name=row["name"],
            hint=row["key_hint"],
            scopes=list(row["scopes"]),
            rate_per_s=row["rate_per_s"],
            burst=row["burst"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


class NewApiKey(ApiKey):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [KEY_EXAMPLE | {"key": "sk_seo_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789xyz"}]
        }
    )

    key: str = Field(description="shown once: only its hash is kept")


class KeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [KEY_EXAMPLE]}]})

    data: list[ApiKey]


class WebhookSecret(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"secret": "whsec_9a8b7c6d5e4f3a2b1c0d"}]}
    )

    secret: str


class WebhookDelivery(BaseModel):
    delivery_id: str
    url: str
    attempts: int
    state: Literal["pending", "delivered", "failed"]
    last_error: str | None = None
    delivered_at: datetime | None = None
    next_at: datetime | None = None


class WebhookDeliveries(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "data": [
                        {
                            "delivery_id": "d1c2b3a4958677f6e5d4c3b2a1908f7e",
                            "url": "https://hooks.example.com/seoblog",
                            "attempts": 1,
                            "state": "delivered",
                            "delivered_at": WHEN,
                        }
                    ]
                }
            ]
        }
    )

    data: list[WebhookDelivery]
