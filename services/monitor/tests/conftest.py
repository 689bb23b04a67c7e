"""A monitor in this process with its real lifespan (NATS, PostgreSQL), started with the test's
own settings, and a factory of the pipeline events the tests publish at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from monitor.app import create_app
from monitor.settings import Settings
from seoblog_contracts import (
    JobFailed,
    JobSpec,
    JobSubmitted,
    PostGenerated,
    SeoReport,
    Stage,
    TextTranslated,
    Usage,
)
from seoblog_testing import settings_for

Monitor = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
def start_monitor(
    service_env: dict[str, str],
) -> Callable[..., AbstractAsyncContextManager[Monitor]]:
    """`async with start_monitor(**settings) as (app, client)`: the monitor's app, running,
    and an ASGI client of it. The evaluation loop is off (every hour) unless a test sets
    `evaluate_every_s`; tests call `app.state.evaluator.evaluate()` with its clock set."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Monitor]:
        values: dict[str, Any] = {"evaluate_every_s": 3600, "alert_min_jobs": 1000} | overrides
        app = create_app(settings_for(Settings, service_env, port=0, **values))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://monitor") as client,
        ):
            yield app, client

    return start


class Make:
    """The pipeline events the tests publish, as the services would."""

    @staticmethod
    def submitted_at(job_id: str, at: datetime) -> JobSubmitted:
        return JobSubmitted(
            job_id=job_id, occurred_at=at, spec=JobSpec(url="https://example.com/a")
        )

    @staticmethod
    def translated_at(job_id: str, at: datetime, cost_usd: float = 0.0) -> TextTranslated:
        return TextTranslated(
            job_id=job_id,
            occurred_at=at,
            spec=JobSpec(url="https://example.com/a", target_language="de"),
            source_url="https://example.com/a",
            title="A",
            text="Ein Text.",
            source_language="en",
            target_language="de",
            translated=True,
            content_hash="h",
            usage=Usage(prompt_tokens=100, completion_tokens=50, calls=1, cost_usd=cost_usd),
        )

    @staticmethod
    def generated_at(job_id: str, at: datetime, cost_usd: float = 0.0) -> PostGenerated:
        return PostGenerated(
            job_id=job_id,
            occurred_at=at,
            post_id=f"post-{job_id}",
            source_url="https://example.com/a",
            language="en",
            title="A post",
            slug="a-post",
            meta_description="About a post.",
            markdown="# A post",
            html="<h1>A post</h1>",
            keywords=["post"],
            seo=SeoReport(score=90),
            writer="llm:fake-llm",
            usage=Usage(prompt_tokens=300, completion_tokens=200, calls=3, cost_usd=cost_usd),
        )

    @staticmethod
    def failed_at(job_id: str, at: datetime, code: str = "not_found") -> JobFailed:
        return JobFailed(job_id=job_id, occurred_at=at, stage=Stage.CRAWL, code=code, message="404")


@pytest.fixture
def make() -> type[Make]:
    return Make
