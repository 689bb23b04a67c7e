"""The LLM writer: prompt from a versioned template, structured JSON output, validated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from seoblog_contracts import Usage
from seoblog_runtime import JobError
from seoblog_runtime.llm import Llm

from .offline import Draft

PROMPTS = Path(__file__).parent / "prompts"


class FaqItem(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class LlmPost(BaseModel):
    title: str = Field(min_length=10, max_length=120)
    slug: str = Field(min_length=3, max_length=120)
    meta_description: str = Field(min_length=50, max_length=320)
    outline: list[str] = Field(default_factory=list)
    markdown: str = Field(min_length=50)
    faq: list[FaqItem] = Field(default_factory=list)
    key_takeaways: list[str] = Field(default_factory=list)


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
        main_keyword=keywords[0] if keywords else "the article's main topic",
        language=language,
        length=length,
    )


POST_SCHEMA: dict[str, Any] = LlmPost.model_json_schema()


async def write_with_llm(
    llm: Llm,
    *,
    prompt: str,
    length: int,
    on_progress: Callable[[int], Awaitable[None]],
) -> tuple[Draft, Usage]:
    result = await llm.complete(
        [{"role": "user", "content": prompt}],
        purpose="generate_post",
        json_schema=POST_SCHEMA,
        on_progress=on_progress,
        expected_tokens=int(length * 1.6) + 200,
    )
    try:
        post = LlmPost.model_validate_json(result.text)
    except ValidationError as exc:
        raise JobError(
            "llm_bad_output",
            f"The language model's post did not match the schema: {exc.error_count()} errors",
            retryable=True,
        ) from exc
    draft = Draft(
        title=post.title.strip(),
        slug=post.slug.strip(),
        meta_description=post.meta_description.strip(),
        markdown=post.markdown.strip(),
        outline=post.outline,
        faq=[(f.question, f.answer) for f in post.faq],
        takeaways=post.key_takeaways,
    )
    return draft, result.usage
