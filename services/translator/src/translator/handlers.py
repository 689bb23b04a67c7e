"""Subscriber: translate a crawled page into the job's target language (or pass it through)."""

from __future__ import annotations

import hashlib
import json
import logging

from seoblog_contracts import (
    JobProgress,
    PageCrawled,
    Priority,
    Stage,
    TextTranslated,
    Usage,
    stage_event_id,
)
from seoblog_runtime import Parts
from seoblog_runtime.llm import Llm, LlmResult, estimate_tokens
from seoblog_runtime.store import write_until_stored
from seoblog_telemetry import span

from .detect import detect_language_off_loop
from .settings import Settings
from .store import PgTranslationStore, SegmentLedger
from .translate import translate_document

log = logging.getLogger("translator.handlers")


PROGRESS_STEP = 10


class Recorder:
    """The job's segment calls in the translator's store: an intent row before each call,
    the answer the moment it arrives; attempts numbered per segment key."""

    def __init__(
        self,
        store: PgTranslationStore,
        llm: Llm,
        job_id: str,
        ledger: SegmentLedger,
        model: str | None = None,
    ) -> None:
        self.store, self.llm, self.job_id = store, llm, job_id
        self.model = model or llm.settings.task_model
        self.next_attempt = dict(ledger.next_attempt)

    async def begin(self, key: str, messages: list[dict[str, str]]) -> int:
        attempt = self.next_attempt.get(key, 0)
        self.next_attempt[key] = attempt + 1
        if attempt:
            log.warning(
                "segment asked again; an earlier attempt may have been billed",
                extra={"job_id": self.job_id, "attempt": attempt},
            )
        model = self.model
        digest = hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()
        estimate = self.llm.usage(estimate_tokens(messages), 0, model=model)
        await self.store.open_segment(self.job_id, key, attempt, model, digest, estimate)
        return attempt

    async def done(self, key: str, attempt: int, result: LlmResult) -> None:
        # A paid answer is kept until its record is written, even across a database restart.
        await write_until_stored(
            lambda: self.store.complete_segment(
                self.job_id, key, attempt, result.text, result.usage, batched=result.batched
            ),
            what="segment_call",
        )

    async def failed(self, key: str, attempt: int, error: BaseException) -> None:
        await self.store.fail_segment(self.job_id, key, attempt, f"{type(error).__name__}: {error}")


def same_language(a: str | None, b: str) -> bool:
    return a is not None and a.split("-")[0].lower() == b.split("-")[0].lower()


class TranslatePage:
    def __init__(
        self, parts: Parts[PgTranslationStore], settings: Settings, llm: Llm | None
    ) -> None:
        self.parts = parts
        self.settings = settings
        self.llm = llm
        self.languages = tuple(settings.detect_languages)

    async def __call__(self, event: PageCrawled) -> None:
        bus, store = self.parts.bus, self.parts.store
        done, ledger = await store.job_state(event.job_id)  # one round trip for both
        if done is not None:
            await bus.publish(done)
            return
        # The stage's first event (the job's state moves on with it). Progress needs no confirmed
        # write: the stage's result is published with the stream's ack, on the same connection
        # after it, so the stream keeps their order; no round trip waits for this one.
        await bus.publish(
            JobProgress(job_id=event.job_id, stage=Stage.TRANSLATE, percent=0), ack=False
        )
        target = event.spec.target_language
        with span("detect language", {"seoblog.text_chars": len(event.text)}) as detecting:
            detected = await detect_language_off_loop(event.text, self.languages)
            source = detected or event.language
            detecting.set_attribute("seoblog.language", source or "")
        title, text, usage = event.title, event.text, Usage()
        translated, note = False, ""
        if same_language(source, target):
            note = f"source is already in '{target}'; passed through untouched"
        elif self.llm is None:
            note = "no LLM configured: text passed through untranslated"
        else:
            job_id = event.job_id
            shown = [0]

            async def progress(done: int, total: int) -> None:
                percent = int(100 * done / total)
                if percent < shown[0] + PROGRESS_STEP and done < total:
                    return  # coalesced: a step of 10 % or the last segment is worth an event
                shown[0] = percent
                await bus.publish(
                    JobProgress(
                        job_id=job_id,
                        stage=Stage.TRANSLATE,
                        percent=percent,
                        message=f"segment {done}/{total}",
                    ),
                    ack=False,  # progress needs no confirmed write; the stage's result does
                )

            variant_model = event.spec.overrides("translator").get("model")
            model = str(variant_model) if variant_model is not None else None
            document = f"# {event.title}\n\n{event.text}"
            with span("translate", {"seoblog.target_language": target}) as translating:
                result = await translate_document(
                    document,
                    target=target,
                    glossary=event.spec.keywords,
                    llm=self.llm,
                    cache=self.parts.cache,
                    prompt_version=self.settings.prompt_version,
                    max_tokens=self.settings.segment_tokens,
                    concurrency=self.settings.segment_concurrency,
                    on_segment=progress,
                    paid=ledger.done,
                    recorder=Recorder(store, self.llm, job_id, ledger, model),
                    low_priority=event.spec.priority == Priority.LOW,
                    model=model,
                )
                translating.set_attribute("seoblog.segments", result.segments)
            first, _, rest = result.text.partition("\n\n")
            title, text = first.removeprefix("# ").strip() or event.title, rest
            usage = await store.job_usage(job_id)  # every call it made, now or before
            translated = True
            note = "; ".join(result.problems)
        out = TextTranslated(
            event_id=stage_event_id(event.job_id, "text.translated"),
            job_id=event.job_id,
            spec=event.spec,
            source_url=event.final_url,
            title=title,
            text=text,
            source_language=source,
            target_language=target,
            translated=translated,
            note=note,
            content_hash=event.content_hash,
            usage=usage,
        )
        with span("store translation"):
            recorded = await store.record(out)
        await bus.publish(recorded)


def register(parts: Parts[PgTranslationStore], handler: TranslatePage) -> None:
    parts.bus.consume(
        parts.bus.subjects.of(PageCrawled),
        "translator-translate_page",
        PageCrawled,
        handler,
        stage=Stage.TRANSLATE,
    )
