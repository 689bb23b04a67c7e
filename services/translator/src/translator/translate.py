"""Translation of one document through the LLM: segments translated concurrently, each cached
by its hash, target language, model and prompt version; a job reuses the segments it already
paid for; glossary terms, links and the markdown structure are checked after."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.trace import Span

from seoblog_contracts import Usage
from seoblog_runtime import Cache
from seoblog_runtime.llm import Llm, LlmResult
from seoblog_telemetry import span

from .segment import join_segments, protect, restore, split_segments, structure_signature
from .store import PaidSegment

log = logging.getLogger("translator.translate")

SYSTEM_PROMPT = (
    "You are a professional translator. Translate the user's markdown into the language "
    "with ISO code '{target}'. Keep the markdown structure exactly: headings, lists, tables, "
    "links, numbers and code stay as they are, and placeholders like ⟦0⟧ are copied "
    "unchanged. Reply with the translation only."
)


class SegmentRecorder(Protocol):
    """Where a job's segment calls are recorded: the intent before the call, then its answer
    (or that no answer came)."""

    async def begin(self, key: str, messages: list[dict[str, str]]) -> int:
        """Write the intent; returns its attempt number."""

    async def done(self, key: str, attempt: int, result: LlmResult) -> None: ...

    async def failed(self, key: str, attempt: int, error: BaseException) -> None: ...


class _Skipped(Exception):
    """A segment not sent because another one already failed the document."""


def segment_key(segment: str, target: str, model: str, prompt_version: str) -> str:
    digest = hashlib.sha256(segment.encode()).hexdigest()
    return f"segment:{prompt_version}:{model}:{target}:{digest}"


@dataclass
class Translation:
    text: str
    usage: Usage = field(default_factory=Usage)
    segments: int = 0
    calls_made: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def check_translation(source: str, result: str, glossary: list[str]) -> list[str]:
    """What the translation broke: the markdown structure, or protected terms that vanished."""
    problems: list[str] = []
    before, after = structure_signature(source), structure_signature(result)
    if before != after:
        names = ("headings", "list items", "links", "code fences", "table rows")
        changed = [f"{n} {a}->{b}" for n, a, b in zip(names, before, after, strict=True) if a != b]
        problems.append("markdown structure changed: " + ", ".join(changed))
    lost = [t for t in glossary if t.strip() and t in source and t not in result]
    if lost:
        problems.append("glossary terms lost: " + ", ".join(lost))
    return problems


async def translate_document(
    text: str,
    *,
    target: str,
    glossary: list[str],
    llm: Llm,
    cache: Cache,
    prompt_version: str,
    max_tokens: int,
    concurrency: int,
    on_segment: Callable[[int, int], Awaitable[None]],
    paid: dict[str, PaidSegment] | None = None,
    recorder: SegmentRecorder | None = None,
    low_priority: bool = False,
    model: str | None = None,
) -> Translation:
    """Translate `text`; usage counts the segments this job paid for (now or before).

    When a segment fails, segments not yet sent are skipped, but calls already in flight run
    to their answer and are recorded: the provider bills them either way, a redelivery reuses
    them, and a half-open breaker's probe settles instead of being cancelled. The first error
    goes up once every segment has let go. A cancel from outside cancels and awaits them all."""
    segments = split_segments(text, max_tokens=max_tokens)
    paid = paid or {}
    out = Translation(text="", segments=len(segments))
    done = 0
    gate = asyncio.Semaphore(concurrency)
    model = model or llm.settings.task_model  # a job's experiment variant may name another
    system = SYSTEM_PROMPT.format(target=target)
    reused: set[str] = set()
    errors: list[BaseException] = []

    async def one(index: int, segment: str) -> str:
        where = {"seoblog.segment.index": index, "seoblog.segment.chars": len(segment)}
        with span("translate segment", where) as current:
            return await _one(segment, current)

    async def _one(segment: str, current: Span) -> str:
        nonlocal done
        protected, mapping = protect(segment, glossary)
        key = segment_key(protected, target, model, prompt_version)
        messages = [{"role": "system", "content": system}, {"role": "user", "content": protected}]

        async def call() -> bytes:
            current.set_attribute("seoblog.segment.source", "llm")
            attempt = await recorder.begin(key, messages) if recorder is not None else 0
            try:
                result = await llm.complete(
                    messages,
                    purpose="translate",
                    expected_tokens=len(protected) // 3 + 16,
                    low_priority=low_priority,
                    model=model,
                )
            except Exception as exc:  # no answer: not billed (a cancel leaves the intent open)
                if recorder is not None:
                    await recorder.failed(key, attempt, exc)
                raise
            if recorder is not None:  # paid for: record it even if this task is cancelled now
                await asyncio.shield(recorder.done(key, attempt, result))
            out.usage = out.usage + result.usage
            out.calls_made += 1
            return json.dumps({"text": result.text}).encode()

        current.set_attribute("seoblog.segment.source", "cache")  # unless paid or asked below
        if (before := paid.get(key)) is not None:  # this job paid for it on an earlier delivery
            current.set_attribute("seoblog.segment.source", "paid")
            if key not in reused:  # a segment repeated in the text was paid for once
                reused.add(key)
                out.usage = out.usage + before.usage
            translated = before.translation
        else:
            async with gate:
                if errors:
                    raise _Skipped  # the document has failed: send nothing more
                try:
                    translated = json.loads(await cache.get_or_compute(key, call))["text"]
                except Exception as exc:
                    errors.append(exc)  # before the gate lets the next segment in
                    raise
        done += 1
        await on_segment(done, len(segments))
        return restore(translated, mapping)

    tasks = [asyncio.ensure_future(one(i, s)) for i, s in enumerate(segments)]
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:  # cancelled from outside (shutdown, a cancelled job)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # let them let go first
        raise
    if errors:
        raise errors[0]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise failed[0]
    out.text = join_segments([r for r in results if isinstance(r, str)])
    out.problems = check_translation(text, out.text, glossary)
    if out.problems:
        log.warning("translation check failed", extra={"problems": out.problems})
    return out
