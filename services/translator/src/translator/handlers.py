"""Subscriber: translate a crawled page into the job's target language (or pass it through)."""

from __future__ import annotations

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
from seoblog_runtime.llm import Llm

from .detect import detect_language
from .settings import Settings
from .store import PgTranslationStore
from .translate import translate_document


def same_language(a: str | None, b: str) -> bool:
    return a is not None and a.split("-")[0].lower() == b.split("-")[0].lower()


class TranslatePage:
    def __init__(
        self, parts: Parts[PgTranslationStore], settings: Settings, llm: Llm | None
    ) -> None:
        self.parts = parts
        self.settings = settings
        self.llm = llm

    async def __call__(self, event: PageCrawled) -> None:
        bus, store = self.parts.bus, self.parts.store
        if (done := await store.translation_of(event.job_id)) is not None:
            await bus.publish(done)
            return
        await bus.publish(JobProgress(job_id=event.job_id, stage=Stage.TRANSLATE, percent=0))
        target = event.spec.target_language
        source = detect_language(event.text) or event.language
        title, text, usage = event.title, event.text, Usage()
        translated, note = False, ""
        if same_language(source, target):
            note = f"source is already in '{target}'; passed through untouched"
        elif self.llm is None:
            note = "no LLM configured: text passed through untranslated"
        else:

            async def progress(done: int, total: int) -> None:
                await bus.publish(
                    JobProgress(
                        job_id=event.job_id,
                        stage=Stage.TRANSLATE,
                        percent=int(100 * done / total),
                        message=f"segment {done}/{total}",
                    )
                )

            job_id = event.job_id
            model = self.llm.settings.task_model

            async def record(key: str, text: str, usage: Usage, batched: bool) -> None:
                await store.record_segment(job_id, key, model, usage, text, batched=batched)

            document = f"# {event.title}\n\n{event.text}"
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
                paid=await store.paid_segments(job_id),
                record=record,
                low_priority=event.spec.priority == Priority.LOW,
            )
            first, _, rest = result.text.partition("\n\n")
            title, text, usage = first.removeprefix("# ").strip() or event.title, rest, result.usage
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
        await bus.publish(await store.record(out))


def register(parts: Parts[PgTranslationStore], handler: TranslatePage) -> None:
    parts.bus.consume(
        parts.bus.subjects.of(PageCrawled),
        "translator-translate_page",
        PageCrawled,
        handler,
        stage=Stage.TRANSLATE,
    )
