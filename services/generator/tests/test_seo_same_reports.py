"""The SEO report is the same as the one seo.py gave before it was made faster (issue 8): fixture
articles (as the crawler extracts them, and their ground-truth text), with extractive drafts and
LLM-style posts, keywords present, absent, without spaces and of no Latin letters, several
languages, against `_seo_before.py`, the module kept as it was (commit 278a4df)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crawler.article import ExtractionError
from crawler.extract import extract_article
from generator import seo
from generator.llm_writer import build_prompt, parse_post
from generator.offline import Draft
from seoblog_testing.fake_llm import fake_post

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared/fixtures/extraction"
TRUTH_EVERY = 2  # every second page's ground-truth text (plain text sources)
EXTRACTED_EVERY = 4  # every fourth page through the crawler's extraction (markdown sources)


@cache
def before() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "seo_before", Path(__file__).with_name("_seo_before.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["seo_before"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Source:
    title: str
    text: str
    language: str


@cache
def sources() -> list[Source]:
    truth = json.loads((FIXTURES / "ground-truth.json").read_text())
    found: list[Source] = []
    for n, page_id in enumerate(sorted(truth)):
        body = str(truth[page_id].get("articleBody") or "")
        title = body.split(".")[0][:80].strip() or "Article"  # the truth has no titles
        if body and n % TRUTH_EVERY == 0:
            found.append(Source(title, body, "en"))
        if n % EXTRACTED_EVERY == 0:
            raw = gzip.decompress((FIXTURES / "html" / f"{page_id}.html.gz").read_bytes())
            try:
                article = extract_article(raw.decode("utf-8", "replace"), truth[page_id]["url"])
            except ExtractionError:
                continue
            if article.text:
                language = (article.language or "en").split("-")[0]
                found.append(Source(article.title or title, article.text, language))
    return found


def keyword_of(source: Source) -> str:
    candidates = [w for w in seo.words(source.title) if len(w) >= 5]
    return max(candidates, key=lambda w: seo.count_keyword(source.text, w), default="")


def extractive(source: Source, keyword: str) -> Draft:
    """A draft made of the source's own sentences under headings, as an extractive writer's
    (built here, so this test does not follow the offline writer's changes)."""
    sentences = before().split_sentences(source.text, source.language)[:40]
    body = ["> Summarised from the source.", ""]
    for n in range(0, len(sentences), 8):
        if n:
            body += [f"## {' '.join(sentences[n].split()[:4])}", ""]
        body += [" ".join(sentences[n : n + 4]), "", " ".join(sentences[n + 4 : n + 8]), ""]
    body += ["```", "code " + keyword, "```", "", "| a | b |", "|---|---|", f"| {keyword} | 1 |"]
    return Draft(
        title=f"{keyword}: {source.title}"[:70],
        slug=seo.slugify(f"{keyword} {source.title}"),
        meta_description=" ".join(sentences[:3])[:170],
        markdown="\n".join(body),
        outline=[],
        faq=[],
        takeaways=[],
    )


def drafts(source: Source, keyword: str) -> Iterator[Draft]:
    keywords = [keyword] if keyword else []
    yield extractive(source, keyword)
    prompt = build_prompt(
        "post_v1",
        title=source.title,
        text=source.text[:12000],
        keywords=keywords,
        language=source.language,
        length=600,
    )
    post = json.dumps(fake_post(prompt), ensure_ascii=False)
    yield parse_post(post, keywords=keywords, language=source.language)


def report_inputs(source: Source) -> Iterator[dict[str, Any]]:
    keyword = keyword_of(source)
    for draft in drafts(source, keyword):
        base = {
            "title": draft.title,
            "slug": draft.slug,
            "meta_description": draft.meta_description,
            "markdown": draft.markdown,
            "source_text": source.text,
        }
        yield base | {"keywords": [keyword], "target_words": 800, "language": source.language}
        yield base | {"keywords": [" ", keyword, "x"], "target_words": 600, "language": "pt-BR"}
        yield base | {"keywords": [], "target_words": 0, "language": "und"}
        cjk = {"keywords": ["水", "ocean"], "target_words": 300, "language": "ja"}
        cyrillic = {"keywords": ["Москва"], "target_words": 5000, "language": "ru"}
        yield base | (cjk if len(base["title"]) % 2 else cyrillic)
        # The source scored as a post (a draft that copies it: originality, headings).
        yield base | {"markdown": source.text, "keywords": [keyword], "target_words": 800}


def dumped(report: Any) -> dict[str, Any]:
    return dict(report.model_dump())


@pytest.mark.parametrize("part", range(4))
def test_every_report_is_the_same_as_before(part: int) -> None:
    old = before()
    cases = [c for s in sources()[part::4] for c in report_inputs(s)]
    assert cases
    wanted = [dumped(old.seo_report(**case)) for case in cases]
    for case, want in zip(cases, wanted, strict=True):
        assert dumped(seo.seo_report(**case)) == want, case["title"]
    # Scored again in another order (what any cache keeps must not leak between posts).
    for case, want in reversed(list(zip(cases, wanted, strict=True))):
        assert dumped(seo.seo_report(**case)) == want, case["title"]


def test_the_measures_the_writers_use_are_the_same_as_before() -> None:
    old = before()
    for source in sources()[::5]:
        keyword = keyword_of(source)
        for draft in drafts(source, keyword):
            for text in (draft.markdown, source.text):
                assert seo.count_words(text) == old.count_words(text)
                assert seo.words(text) == old.words(text)
                for language in (source.language, "en", "ja"):
                    assert seo.split_sentences(text, language) == old.split_sentences(
                        text, language
                    )
                    new_measures = seo.measure_body(text, keyword, language)
                    old_measures = old.measure_body(text, keyword, language)
                    assert new_measures.__dict__ == old_measures.__dict__
                assert seo.plain_text(text) == old.plain_text(text)
            assert seo.shared_shingle_share(
                draft.markdown, seo.plain_text(source.text)
            ) == old.shared_shingle_share(draft.markdown, old.plain_text(source.text))


@pytest.mark.parametrize(
    "text",
    [
        "plain words, it's rock-'n'-roll — don’t stop_here 42 x2 snake_case",
        "café naïve Ærøskøbing straße İstanbul ΣΊΣΥΦΟΣ σίσυφος",
        "e\u0301clair cafe\u0301 combining marks after letters",  # NFC composes them
        "हिन्दी में लिखा गया वाक्य",  # Devanagari vowel signs are marks
        "東京は日本の首都です。Tokyo is big",
        "ภาษาไทยไม่มีช่องว่าง and English",
        "Привет, мир! Это тест-строка.",
        "שלום עולם עִבְרִית",  # Hebrew points are marks
        "مرحبا بالعالم العَرَبِيَّة",
        "--'' ’’ -word- 'quoted' ’tis 1-2-3 a-b-c",
        "",
    ],
)
def test_words_are_the_same_as_before(text: str) -> None:
    assert seo.words(text) == before().words(text)
