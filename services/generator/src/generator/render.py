"""Markdown to safe HTML (markdown-it-py, then nh3) and the schema.org JSON-LD we append to it.

Everything from the post is sanitised; only the JSON-LD, which we build and escape, is trusted.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import nh3
from markdown_it import MarkdownIt

_ALLOWED_TAGS = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "code",
        "del",
        "details",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "s",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
# Removed together with their content, not just unwrapped.
_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"}
)
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
_CODE_CLASS_RE = re.compile(r"language-[\w+#.-]{1,40}")
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # markdown-it marks fenced code with class="language-x"; any other class is dropped.
    if tag == "code" and attribute == "class":
        return value if _CODE_CLASS_RE.fullmatch(value) else None
    return value


@cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("table")


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        filter_style_properties={"text-align"},
        strip_comments=True,
    )


def sanitize_html(html: str) -> str:
    """Allow-list sanitising: no scripts, event handlers, styles or javascript:/data: URLs."""
    return _cleaner().clean(html)


def render_html(markdown: str) -> str:
    """CommonMark plus tables, rendered and then sanitised (raw HTML in the post is untrusted)."""
    return sanitize_html(_markdown().render(markdown))


def _script_json(data: dict[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in _JSON_ESCAPES.items():
        text = text.replace(raw, escaped)
    return f'<script type="application/ld+json">{text}</script>'


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
    blocks = [_script_json(article)]
    if faq:
        blocks.append(
            _script_json(
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
