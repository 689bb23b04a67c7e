"""Subscriber: write the post for a translated text, score it, revise it once when it scores
below the threshold, store it, announce it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from seoblog_contracts import (
    JobProgress,
    PostGenerated,
    Priority,
    SeoReport,
    Stage,
    TextTranslated,
    Usage,
    stage_event_id,
)
from seoblog_runtime import JobError, Parts
from seoblog_runtime.llm import Llm, estimate_tokens
from seoblog_runtime.store import write_until_stored
from seoblog_telemetry import span

from .llm_writer import (
    PROMPTS,
    build_prompt,
    build_revision,
    draft_from,
    draft_json,
    parse_post,
    post_problems,
    request_post,
    revision_messages,
)
from .offline import Draft, write_offline
from .render import render_page
from .seo import seo_report
from .settings import Settings
from .store import PgPostStore

log = logging.getLogger("generator.handlers")

PURPOSE = "generate_post"
REVISE = "revise_post"


def generation_key(event: TextTranslated, settings: Settings, model: str) -> str:
    """Everything that changes the output, so identical work is shared and nothing else."""
    spec = event.spec
    parts: list[object] = [
        hashlib.sha256(event.text.encode()).hexdigest(),
        event.title,
        spec.keywords,
        event.target_language,
        spec.length,
        model,
        settings.prompt_version,
        settings.revise_prompt_version,
        settings.revise_below,
    ]
    if tag := spec.overrides_tag("generator"):  # an experiment variant's post is its own
        parts.append(tag)
    material = json.dumps(parts, ensure_ascii=False)
    return f"post:{hashlib.sha256(material.encode()).hexdigest()}"


@dataclass(frozen=True)
class Knobs:
    """The settings one job is written with: the service's, or its experiment variant's."""

    prompt_version: str
    revise_prompt_version: str
    revise_below: int
    model: str | None
    temperature: float | None

    @classmethod
    def of(cls, settings: Settings, event: TextTranslated, llm: Llm | None) -> Knobs:
        o = event.spec.overrides("generator")
        knobs = cls(
            prompt_version=str(o.get("prompt_version", settings.prompt_version)),
            revise_prompt_version=str(
                o.get("revise_prompt_version", settings.revise_prompt_version)
            ),
            revise_below=int(o.get("revise_below", settings.revise_below)),
            model=str(o["model"]) if "model" in o else (llm.settings.task_model if llm else None),
            temperature=float(o["temperature"]) if "temperature" in o else None,
        )
        for version in (knobs.prompt_version, knobs.revise_prompt_version):
            if not (PROMPTS / f"{version}.md").is_file():
                raise JobError(
                    "unknown_prompt_version",
                    f"The generator has no prompt template {version!r} (an experiment "
                    "variant's override); the job cannot be written with it.",
                )
        return knobs


def written_language(event: TextTranslated) -> str:
    """The language of the text the generator got: the target when it was translated or
    already in it, else the article's own ("und" when it could not be detected)."""
    source = event.source_language
    if event.translated or (source and source.split("-")[0] == event.target_language.split("-")[0]):
        return event.target_language
    return source or "und"


def score(draft: Draft, event: TextTranslated, language: str | None = None) -> SeoReport:
    with span("seo score") as scoring:
        report = seo_report(
            title=draft.title,
            slug=draft.slug,
            meta_description=draft.meta_description,
            markdown=draft.markdown,
            keywords=event.spec.keywords,
            target_words=event.spec.length,
            source_text=event.text,
            language=language or event.target_language,
        )
        scoring.set_attribute("seoblog.seo.score", report.score)
        return report


class GeneratePost:
    def __init__(self, parts: Parts[PgPostStore], settings: Settings, llm: Llm | None) -> None:
        self.parts = parts
        self.settings = settings
        self.llm = llm

    async def __call__(self, event: TextTranslated) -> None:
        bus, store = self.parts.bus, self.parts.store
        if (done := await store.post_of(event.job_id)) is not None:
            await bus.publish(done)
            return
        # The stage's first event (the job's state moves on with it). Progress needs no confirmed
        # write: the stage's result is published with the stream's ack, on the same connection
        # after it, so the stream keeps their order; no round trip waits for this one.
        await bus.publish(
            JobProgress(job_id=event.job_id, stage=Stage.GENERATE, percent=0), ack=False
        )
        spec = event.spec
        language = event.target_language
        if self.llm is None:
            language = written_language(event)  # it cannot translate: it writes the article's
            await bus.publish(
                JobProgress(
                    job_id=event.job_id, stage=Stage.GENERATE, percent=10, message="writing offline"
                ),
                ack=False,
            )
            with span("write offline"):
                draft = write_offline(
                    title=event.title,
                    text=event.text,
                    keywords=spec.keywords,
                    language=language,
                    length=spec.length,
                )
            await bus.publish(
                JobProgress(
                    job_id=event.job_id, stage=Stage.GENERATE, percent=80, message="scoring"
                ),
                ack=False,
            )
            writer, usage, revised = "offline", Usage(), False
        else:
            with span("write post"):
                draft, revised = await self._write_with_llm(
                    event, self.llm, Knobs.of(self.settings, event, self.llm)
                )
            writer = f"llm:{spec.overrides('generator').get('model', self.llm.settings.task_model)}"
            usage = await store.job_usage(event.job_id)  # what this job paid, now or before
        with span("render"):
            html = render_page(
                draft.markdown,
                title=draft.title,
                description=draft.meta_description,
                url=event.source_url,
                language=language,
                faq=draft.faq,
            )
        post = PostGenerated(
            event_id=stage_event_id(event.job_id, "post.generated"),
            job_id=event.job_id,
            post_id=stage_event_id(event.job_id, "post"),
            source_url=event.source_url,
            language=language,
            requested_language=event.target_language,
            title=draft.title,
            slug=draft.slug,
            meta_description=draft.meta_description,
            markdown=draft.markdown,
            html=html,
            keywords=spec.keywords,
            seo=score(draft, event, language),
            writer=writer,
            usage=event.usage + usage,
            revised=revised,
            experiments=spec.experiments,
        )
        with span("store post"):
            recorded = await store.record_post(post)
        await bus.publish(recorded)

    async def _write_with_llm(
        self, event: TextTranslated, llm: Llm, s: Knobs
    ) -> tuple[Draft, bool]:
        """Share identical work through the cache (one call across replicas); inside, reuse
        any call this job already paid for. (draft, whether a revision pass ran)"""
        key = generation_key(event, self.settings, s.model or llm.settings.task_model)
        value = await self.parts.cache.get_or_compute(
            key, lambda: self._compose(event, llm, key, s)
        )
        found = json.loads(value)
        return draft_from(found["draft"]), bool(found.get("revised"))

    async def _compose(self, event: TextTranslated, llm: Llm, key: str, s: Knobs) -> bytes:
        spec = event.spec
        keywords, language, length = spec.keywords, event.target_language, spec.length
        prompt = build_prompt(
            s.prompt_version,
            title=event.title,
            text=event.text[: self.settings.max_source_chars],
            keywords=keywords,
            language=language,
            length=length,
        )

        async def progress(percent: int) -> None:
            await self.parts.bus.publish(  # progress: fire and forget, never fails the call
                JobProgress(
                    job_id=event.job_id, stage=Stage.GENERATE, percent=percent, message="writing"
                ),
                ack=False,
            )

        draft = await self._paid(
            event,
            llm,
            PURPOSE,
            key,
            [{"role": "user", "content": prompt}],
            on_progress=progress,
            knobs=s,
        )
        report = score(draft, event)
        first_score, revised = report.score, False
        if report.score < s.revise_below:
            with span("revise", {"seoblog.seo.first_score": report.score}) as revising:
                await self.parts.bus.publish(
                    JobProgress(
                        job_id=event.job_id,
                        stage=Stage.GENERATE,
                        percent=96,
                        message=f"revising (SEO score {report.score} < {s.revise_below})",
                    ),
                    ack=False,
                )
                feedback = build_revision(
                    s.revise_prompt_version,
                    report=report,
                    problems=post_problems(draft, keywords=keywords, length=length),
                    keywords=keywords,
                    language=language,
                    length=length,
                )
                better = await self._paid(
                    event, llm, REVISE, key, revision_messages(prompt, draft, feedback), knobs=s
                )
                better_report = score(better, event)
                if better_report.score >= report.score:  # never trade a post for a worse one
                    draft, report, revised = better, better_report, True
                revising.set_attribute("seoblog.seo.revised", revised)
        return json.dumps(
            {"draft": draft_json(draft), "first_score": first_score, "revised": revised}
        ).encode()

    async def _paid(
        self,
        event: TextTranslated,
        llm: Llm,
        purpose: str,
        key: str,
        messages: list[dict[str, str]],
        *,
        on_progress: Callable[[int], Awaitable[None]] | None = None,
        knobs: Knobs | None = None,
    ) -> Draft:
        """The draft of an answer this job already paid for, or a new call recorded as an
        intent before it is made and completed with the raw answer the moment it arrives,
        so a kill anywhere after that costs nothing twice."""
        store, spec = self.parts.store, event.spec

        def parse(raw: str) -> Draft:
            return parse_post(raw, keywords=spec.keywords, language=event.target_language)

        calls = await store.calls_of(event.job_id, purpose)
        for call in calls:
            if call.state != "done":
                continue  # 'open': a killed attempt, counted as unconfirmed; 'failed': unbilled
            if call.raw is None and call.response and "draft" in call.response:
                return draft_from(call.response["draft"])  # recorded before intents existed
            try:
                return parse(call.raw or "")
            except JobError:
                continue  # a paid answer that is unusable (counted): ask again
        attempt = calls[-1].attempt + 1 if calls else 0
        if calls and calls[-1].state == "open":
            log.warning(
                "an earlier call was interrupted; it may have been billed",
                extra={"job_id": event.job_id, "purpose": purpose, "attempt": attempt - 1},
            )
        model = (knobs.model if knobs else None) or llm.settings.task_model
        await store.open_call(
            event.job_id,
            purpose,
            attempt,
            cache_key=key,
            model=model,
            prompt_hash=prompt_hash(messages),
            estimate=llm.usage(estimate_tokens(messages), 0, model=model),
        )
        try:
            result = await request_post(
                llm,
                messages=messages,
                length=spec.length,
                on_progress=on_progress,
                low_priority=spec.priority == Priority.LOW,
                purpose=purpose,
                model=model,
                temperature=knobs.temperature if knobs else None,
            )
        except Exception as exc:  # no answer came: nothing billed (a cancel leaves it open)
            await store.fail_call(event.job_id, purpose, attempt, f"{type(exc).__name__}: {exc}")
            raise
        # Paid for: the record is written even if this delivery is cancelled right now.
        # A database that is restarting right now delays the record; it never loses the answer.
        await asyncio.shield(
            write_until_stored(
                lambda: store.complete_call(
                    event.job_id, purpose, attempt, result.text, result.usage
                ),
                what="llm_call",
            )
        )
        return parse(result.text)  # an unusable answer fails the attempt; it stays counted


def prompt_hash(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()


def register(parts: Parts[PgPostStore], handler: GeneratePost) -> None:
    parts.bus.consume(
        parts.bus.subjects.of(TextTranslated),
        "generator-generate_post",
        TextTranslated,
        handler,
        stage=Stage.GENERATE,
    )
