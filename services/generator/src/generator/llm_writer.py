"""The LLM writer: prompts from versioned template files, structured JSON output validated and
tidied into a Draft, the problems a post has against its brief, and the revision pass."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from seoblog_contracts import SeoReport, Usage
from seoblog_runtime import JobError
from seoblog_runtime.llm import Llm, LlmResult

from .offline import _FRAMING, Draft
from .seo import (
    META_MAX_CHARS,
    META_MIN_CHARS,
    TITLE_MAX_CHARS,
    TITLE_MIN_CHARS,
    ascii_slug,
    contains_keyword,
    count_words,
    slugify,
)

PROMPTS = Path(__file__).parent / "prompts"
LENGTH_TOLERANCE = 0.25
FAQ_ITEMS = (2, 4)
TAKEAWAYS = (3, 5)
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


class FaqItem(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class LlmPost(BaseModel):
    """What we accept; the brief's tighter limits are in POST_SCHEMA and `post_problems`."""

    title: str = Field(min_length=10, max_length=120)
    slug: str = Field(min_length=1, max_length=120)
    meta_description: str = Field(min_length=50, max_length=320)
    outline: list[str] = Field(default_factory=list)
    markdown: str = Field(min_length=50)
    faq: list[FaqItem] = Field(default_factory=list)
    key_takeaways: list[str] = Field(default_factory=list)


def post_schema() -> dict[str, Any]:
    """The JSON schema sent to the model: LlmPost with the brief's limits."""
    schema = LlmPost.model_json_schema()
    props = schema["properties"]
    props["title"] |= {"minLength": TITLE_MIN_CHARS, "maxLength": TITLE_MAX_CHARS}
    props["meta_description"] |= {"minLength": META_MIN_CHARS, "maxLength": META_MAX_CHARS}
    props["slug"] |= {"pattern": _SLUG_RE.pattern, "maxLength": 60}
    props["outline"] |= {"minItems": 2}
    props["faq"] |= {"minItems": FAQ_ITEMS[0], "maxItems": FAQ_ITEMS[1]}
    props["key_takeaways"] |= {"minItems": TAKEAWAYS[0], "maxItems": TAKEAWAYS[1]}
    schema["required"] = list(props)
    return schema


POST_SCHEMA: dict[str, Any] = post_schema()


@cache
def template(version: str) -> str:
    return (PROMPTS / f"{version}.md").read_text()


def build_prompt(
    version: str, *, title: str, text: str, keywords: list[str], language: str, length: int
) -> str:
    return template(version).format(
        title=title,
        text=text,
        keywords=", ".join(keywords) or "(none given: choose them from the article)",
        main_keyword=main_keyword(keywords),
        language=language,
        length=length,
    )


def main_keyword(keywords: list[str]) -> str:
    return keywords[0] if keywords else "the article's main topic"


def build_revision(
    version: str,
    *,
    report: SeoReport,
    problems: list[str],
    keywords: list[str],
    language: str,
    length: int,
) -> str:
    listed = list(dict.fromkeys([*problems, *report.reasons]))
    return template(version).format(
        score=report.score,
        problems="\n".join(f"- {p}" for p in listed) or "- (none listed)",
        main_keyword=main_keyword(keywords),
        language=language,
        length=length,
    )


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut after a whole word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = head.rfind(" ")
    return (head[:cut] if cut > 0 else text[:limit]).rstrip(" ,;:-–—")


def _with_sections(markdown: str, language: str, faq: list[FaqItem], takeaways: list[str]) -> str:
    """The body plus the takeaways and FAQ sections when the writer left them out: the FAQ
    must be visible on the page for its FAQPage JSON-LD to be valid."""
    framing = _FRAMING.get(language.lower().split("-")[0], _FRAMING["en"])
    takeaways_heading, faq_heading = framing[0], framing[1]
    headings = {h.casefold() for _, h in _HEADING_RE.findall(markdown)}
    parts = [markdown.strip()]
    if takeaways and takeaways_heading.casefold() not in headings:
        parts += [f"## {takeaways_heading}", "\n".join(f"- {t.strip()}" for t in takeaways)]
    if faq and faq_heading.casefold() not in headings:
        parts.append(f"## {faq_heading}")
        for item in faq:
            parts += [f"### {item.question.strip()}", item.answer.strip()]
    return "\n\n".join(parts) + "\n"


def to_draft(post: LlmPost, *, keywords: list[str], language: str) -> Draft:
    """A tidy draft: a valid slug carrying the keyword, title and meta cut to their limits,
    an outline from the real headings, takeaways and FAQ in the body."""
    keyword = keywords[0] if keywords else ""
    title = _cut(post.title, TITLE_MAX_CHARS)
    if keyword and contains_keyword(post.title, keyword) and not contains_keyword(title, keyword):
        title = post.title.strip()  # a longer title beats one that lost the keyword
    slug = post.slug.strip().lower()
    if not _SLUG_RE.match(slug) or len(slug) > 60:
        slug = slugify(slug if ascii_slug(slug) else title)
    keyword_slug = ascii_slug(keyword)
    if keyword_slug and f"-{keyword_slug}-" not in f"-{slug}-":
        slug = slugify(f"{keyword} {slug}")
    meta = post.meta_description.strip()
    if len(meta) > META_MAX_CHARS:
        meta = _cut(meta, META_MAX_CHARS - 1) + "…"
    markdown = _with_sections(post.markdown, language, post.faq, post.key_takeaways)
    outline = [h for level, h in _HEADING_RE.findall(markdown) if len(level) in (2, 3)]
    return Draft(
        title=title,
        slug=slug,
        meta_description=meta,
        markdown=markdown,
        outline=outline,
        faq=[(f.question.strip(), f.answer.strip()) for f in post.faq],
        takeaways=[t.strip() for t in post.key_takeaways],
    )


def post_problems(draft: Draft, *, keywords: list[str], length: int) -> list[str]:
    """Where the draft misses the brief (beyond what the SEO report measures)."""
    problems: list[str] = []
    keyword = keywords[0] if keywords else ""
    if keyword and not contains_keyword(draft.title, keyword):
        problems.append(f'title does not contain the main keyword "{keyword}"')
    if not _SLUG_RE.match(draft.slug):
        problems.append(f'slug "{draft.slug}" is not lower-case ASCII words joined by hyphens')
    levels = [len(level) for level, _ in _HEADING_RE.findall(draft.markdown)]
    if levels.count(2) < 2:
        problems.append("the body needs at least two H2 (##) sections")
    if 1 in levels:
        problems.append("the body must not contain an H1 (#) heading; the title is the H1")
    words = count_words(draft.markdown)
    if length and abs(words - length) / length > LENGTH_TOLERANCE:
        problems.append(f"the body has {words} words; {length} were asked for")
    if not FAQ_ITEMS[0] <= len(draft.faq) <= FAQ_ITEMS[1]:
        problems.append(f"faq has {len(draft.faq)} questions; give {FAQ_ITEMS[0]}-{FAQ_ITEMS[1]}")
    if not TAKEAWAYS[0] <= len(draft.takeaways) <= TAKEAWAYS[1]:
        problems.append(
            f"key_takeaways has {len(draft.takeaways)} items; give {TAKEAWAYS[0]}-{TAKEAWAYS[1]}"
        )
    return problems


class BadOutput(JobError):
    """The model answered (and billed us) but the post is unusable."""

    def __init__(self, cause: JobError, usage: Usage) -> None:
        super().__init__(cause.code, cause.message, retryable=cause.retryable)
        self.usage = usage


def parse_post(text: str, *, keywords: list[str], language: str) -> Draft:
    try:
        post = LlmPost.model_validate_json(text)
    except ValidationError as exc:
        raise JobError(
            "llm_bad_output",
            f"The language model's post did not match the schema: {exc.error_count()} errors",
            retryable=True,
        ) from exc
    return to_draft(post, keywords=keywords, language=language)


async def request_post(
    llm: Llm,
    *,
    messages: list[dict[str, str]],
    length: int,
    on_progress: Callable[[int], Awaitable[None]] | None,
    low_priority: bool = False,
    purpose: str = "generate_post",
    model: str | None = None,
    temperature: float | None = None,
) -> LlmResult:
    """One call for a whole post (streamed when `on_progress` is given), answer unparsed:
    the caller records what it paid for before it looks at the answer."""
    return await llm.complete(
        messages,
        purpose=purpose,
        json_schema=POST_SCHEMA,
        on_progress=None if low_priority else on_progress,
        expected_tokens=int(length * 1.6) + 200,
        low_priority=low_priority,
        model=model,
        temperature=temperature,
    )


async def write_with_llm(
    llm: Llm,
    *,
    messages: list[dict[str, str]],
    keywords: list[str],
    language: str,
    length: int,
    on_progress: Callable[[int], Awaitable[None]] | None,
    low_priority: bool = False,
    purpose: str = "generate_post",
) -> tuple[Draft, Usage]:
    """One call for a whole post, parsed (for callers that keep no records, like the bench)."""
    result = await request_post(
        llm,
        messages=messages,
        length=length,
        on_progress=on_progress,
        low_priority=low_priority,
        purpose=purpose,
    )
    try:
        return parse_post(result.text, keywords=keywords, language=language), result.usage
    except JobError as exc:
        raise BadOutput(exc, result.usage) from exc


def revision_messages(prompt: str, draft: Draft, feedback: str) -> list[dict[str, str]]:
    """The first request, the post as the model wrote it, and the review as the next turn."""
    answer = {
        "title": draft.title,
        "slug": draft.slug,
        "meta_description": draft.meta_description,
        "outline": draft.outline,
        "markdown": draft.markdown,
        "faq": [{"question": q, "answer": a} for q, a in draft.faq],
        "key_takeaways": draft.takeaways,
    }
    return [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)},
        {"role": "user", "content": feedback},
    ]


def draft_json(draft: Draft) -> dict[str, Any]:
    return asdict(draft)


def draft_from(data: dict[str, Any]) -> Draft:
    return Draft(**(data | {"faq": [tuple(qa) for qa in data["faq"]]}))
