"""Translation of one document through the LLM: segments translated concurrently, each cached
by its hash, target language, model and prompt version; markdown structure checked after."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable

from seoblog_contracts import Usage
from seoblog_runtime import Cache
from seoblog_runtime.llm import Llm

from .segment import join_segments, protect, restore, split_segments, structure_signature

log = logging.getLogger("translator.translate")

SYSTEM_PROMPT = (
    "You are a professional translator. Translate the user's markdown into the language "
    "with ISO code '{target}'. Keep the markdown structure exactly: headings, lists, tables, "
    "links, numbers and code stay as they are, and placeholders like ⟦0⟧ are copied "
    "unchanged. Reply with the translation only."
)


def segment_key(segment: str, target: str, model: str, prompt_version: str) -> str:
    digest = hashlib.sha256(segment.encode()).hexdigest()
    return f"segment:{prompt_version}:{model}:{target}:{digest}"


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
) -> tuple[str, Usage, bool]:
    """(translation, usage of the calls made, whether the structure survived)."""
    segments = split_segments(text, max_tokens=max_tokens)
    usage = Usage()
    done = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(segment: str) -> str:
        nonlocal usage, done
        protected, mapping = protect(segment, glossary)

        async def call() -> bytes:
            nonlocal usage
            result = await llm.complete(
                [
                    {"role": "system", "content": SYSTEM_PROMPT.format(target=target)},
                    {"role": "user", "content": protected},
                ],
                purpose="translate",
            )
            usage = usage + result.usage
            return json.dumps({"text": result.text}).encode()

        async with gate:
            key = segment_key(protected, target, llm.settings.task_model, prompt_version)
            translated = json.loads(await cache.get_or_compute(key, call))["text"]
        done += 1
        await on_segment(done, len(segments))
        return restore(translated, mapping)

    translated = await asyncio.gather(*(one(s) for s in segments))
    result = join_segments(list(translated))
    intact = structure_signature(result) == structure_signature(text)
    if not intact:
        log.warning("translation changed the markdown structure")
    return result, usage, intact
