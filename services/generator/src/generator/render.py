"""Markdown to safe HTML (markdown-it-py, then the shared nh3 policy of seoblog_runtime.html_policy)
and the schema.org JSON-LD we append to it.

Everything from the post is sanitised; only the JSON-LD, which we build and escape, is trusted.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from markdown_it import MarkdownIt

from seoblog_runtime.html_policy import sanitize_html, script_json

__all__ = ["json_ld", "render_html", "render_page", "sanitize_html"]


@cache
def _markdown() -> MarkdownIt:
    # Raw HTML in the markdown is text, not markup: an article that talks about `<script>`
    # (or whose extracted text holds a decoded `&lt;img onerror=...&gt;`) shows it as words.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render_html(markdown: str) -> str:
    """CommonMark plus tables, raw HTML shown as text, then sanitised (the post is untrusted)."""
    return sanitize_html(_markdown().render(markdown))


def json_ld(
    *,
    title: str,
    description: str,
    url: str | None,
    language: str,
    faq: list[tuple[str, str]],
    published: str | None = None,
) -> str:
    """schema.org Article and, with questions, FAQPage blocks; safe inside an HTML page."""
    article: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Article",
        "headline": title,
        "description": description,
        "inLanguage": language,
    }
    if url:
        article["url"] = url
        article["mainEntityOfPage"] = {"@type": "WebPage", "@id": url}
    if published:
        article["datePublished"] = published
    blocks = [script_json(article)]
    if faq:
        blocks.append(
            script_json(
                {
                    "@context": "https://schema.org",
                    "@type": "FAQPage",
                    "inLanguage": language,
                    "mainEntity": [
                        {
                            "@type": "Question",
                            "name": question,
                            "acceptedAnswer": {"@type": "Answer", "text": answer},
                        }
                        for question, answer in faq
                    ],
                }
            )
        )
    return "\n".join(blocks)


def render_page(
    markdown: str,
    *,
    title: str,
    description: str,
    url: str | None,
    language: str,
    faq: list[tuple[str, str]],
    published: str | None = None,
) -> str:
    """The sanitised body followed by our JSON-LD (appended after sanitising, so it survives)."""
    ld = json_ld(
        title=title,
        description=description,
        url=url,
        language=language,
        faq=faq,
        published=published,
    )
    return f"{render_html(markdown)}\n{ld}\n"
