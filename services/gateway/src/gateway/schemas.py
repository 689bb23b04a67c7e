"""The gateway's public JSON shapes (requests, responses, errors), documented in OpenAPI."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from seoblog_contracts import JobSpec, JobState, PostGenerated, SeoReport, Usage


class JobRequest(JobSpec):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/blog/some-article",
                    "keywords": ["remote work", "productivity"],
                    "target_language": "ko",
                    "length": 800,
                    "priority": "normal",
                }
            ]
        }
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


class Job(BaseModel):
    id: str
    state: JobState
    spec: JobSpec
    created_at: datetime
    updated_at: datetime
    progress: Progress | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    error: JobError | None = None
    trace_id: str | None = None
    post_id: str | None = None
    post: PostSummary | None = None
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
            progress=json.loads(row["progress"]) if row["progress"] else None,
            history=row["history"],
            error=json.loads(row["error"]) if row["error"] else None,
            trace_id=row["trace_id"],
            post_id=row["post_id"],
            post=None
            if post is None
            else PostSummary(
                id=post.post_id,
                title=post.title,
                slug=post.slug,
                language=post.language,
                writer=post.writer,
                seo=post.seo,
                usage=post.usage,
            ),
            links={
                "self": f"/v1/jobs/{job_id}",
                "post": f"/v1/posts/{row['post_id']}" if row["post_id"] else None,
            },
        )


class Post(BaseModel):
    id: str
    job_id: str
    source_url: str
    language: str
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

    @classmethod
    def from_event(cls, event: PostGenerated) -> Post:
        return cls(
            id=event.post_id,
            job_id=event.job_id,
            source_url=event.source_url,
            language=event.language,
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
        )


class ErrorBody(BaseModel):
    code: str = Field(description="stable, machine-readable")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
