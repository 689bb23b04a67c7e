"""Pure extraction: HTML in, an Article out (body as markdown and plain text, metadata, links).

trafilatura finds the main content; nothing here touches the network, the broker or a database.
"""

from __future__ import annotations

import copy
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import trafilatura
from lxml import etree
from trafilatura.settings import Document
from trafilatura.utils import load_html
from trafilatura.xml import xmltotxt

# Measured on shared/fixtures/extraction (4-gram F1): favor_precision 0.966, default 0.961,
# favor_recall 0.963 with comments left out; keeping reader comments costs about 0.005.
# Precision mode sometimes stops short of the article (a teaser, a caption); when the recall
# mode finds at least _SHORT_BY times as many words, precision missed it and recall is used:
# 0.973 on the same fixtures (any ratio from about 1.7 to 3.3 gives the same).
_BASE_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "include_formatting": True,
}
_PRECISION: dict[str, Any] = _BASE_OPTIONS | {"favor_precision": True}
_RECALL: dict[str, Any] = _BASE_OPTIONS | {"favor_recall": True}
_SHORT_BY = 2.0
_WORD_RE = re.compile(r"\w+")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}")
_WEB_SCHEMES = ("http", "https")
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"


class ExtractionError(Exception):
    """The HTML holds no article we can use; `code` is machine-readable, `message` is not."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ExtractionError], tuple[str, str]]:
        # Extraction runs in a process pool: the error must survive pickling back.
        return (type(self), (self.code, self.message))


@dataclass(frozen=True)
class Article:
    title: str
    text: str
    author: str | None
    published: str | None
    site_name: str | None
    language: str | None
    canonical_url: str | None
    image: str | None
    links: list[str]
    content_hash: str
    word_count: int


def extract_article(html: str, url: str | None = None) -> Article:
    """The article in `html`, its body as markdown; `url` resolves relative links."""
    found = _main_content(html, url)
    if found is None:
        raise ExtractionError(code="no_content", message=_no_content_message(url))
    document, options = found
    plain = xmltotxt(document.body, include_formatting=False)
    tree = load_html(html)
    return Article(
        title=document.title or "",
        text=_markdown(document.body),
        author=document.author or None,
        published=document.date or None,
        site_name=document.sitename or None,
        language=_declared_language(tree),
        canonical_url=_canonical_url(tree, url),
        image=_absolute_web_url(document.image, url),
        links=_body_links(html, url, options),
        content_hash=hashlib.sha256(_normalise(plain).encode("utf-8")).hexdigest(),
        word_count=len(_WORD_RE.findall(plain)),
    )


def extract_text(html: str, url: str | None = None) -> str | None:
    """The article body as plain text (no markdown), or None when there is none."""
    found = _main_content(html, url)
    if found is None:
        return None
    return xmltotxt(found[0].body, include_formatting=False)


def _main_content(html: str, url: str | None) -> tuple[Document, dict[str, Any]] | None:
    """trafilatura's document with metadata and the options that found it, or None when no
    body text was found: precision mode, unless it missed most of what recall mode finds.

    A leading heading that repeats the title is dropped: the title is a field of its own.
    """
    document = trafilatura.bare_extraction(html, url=url, with_metadata=True, **_PRECISION)
    if not isinstance(document, Document):
        return None
    options = _PRECISION
    recall = trafilatura.bare_extraction(html, url=url, **_RECALL)
    recall_body = recall.body if isinstance(recall, Document) else None
    if recall_body is not None and _word_count(recall_body) >= _SHORT_BY * _word_count(
        document.body
    ):
        document.body, options = recall_body, _RECALL
    if document.body is None:
        return None
    body = document.body
    title = document.title
    if len(body) and body[0].tag == "head" and title and _words(_text_of(body[0])) == _words(title):
        body.remove(body[0])
    if not xmltotxt(body, include_formatting=False).strip():
        return None
    return document, options


def _word_count(body: Any) -> int:
    return 0 if body is None else len(_WORD_RE.findall(" ".join(body.itertext())))


def _markdown(body: Any) -> str:
    """trafilatura's markdown, block by block, with block quotes marked as '> '."""
    blocks: list[str] = []
    if body.text and body.text.strip():
        blocks.append(body.text.strip())
    for child in body:
        holder = etree.Element("body")
        holder.append(copy.deepcopy(child))
        rendered = xmltotxt(holder, include_formatting=True).strip()
        if not rendered:
            continue
        blocks.append(_quoted(rendered) if child.tag == "quote" else rendered)
    return "\n\n".join(blocks)


def _quoted(markdown: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in markdown.split("\n"))


def _body_links(html: str, url: str | None, options: dict[str, Any]) -> list[str]:
    """Absolute http(s) links inside the article body, in order, without duplicates.

    A separate pass: asking trafilatura to keep links changes which text it keeps, and the
    body text must not pay for that.
    """
    document = trafilatura.bare_extraction(html, url=url, include_links=True, **options)
    if not isinstance(document, Document) or document.body is None:
        return []
    own = urldefrag(url).url if url else None
    links: list[str] = []
    for ref in document.body.iter("ref"):
        link = _absolute_web_url(ref.get("target"), url)
        if link is None:
            continue
        link = urldefrag(link).url
        if link != own and link not in links:
            links.append(link)
    return links


def _canonical_url(tree: Any, url: str | None) -> str | None:
    """The declared canonical URL (link rel=canonical, else og:url), made absolute."""
    if tree is None:
        return None
    for link in tree.iterfind(".//link[@rel][@href]"):
        if "canonical" in link.get("rel", "").lower().split():
            return _absolute_web_url(link.get("href"), url)
    og_url = tree.find(".//meta[@property='og:url'][@content]")
    return _absolute_web_url(og_url.get("content"), url) if og_url is not None else None


def _declared_language(tree: Any) -> str | None:
    """The primary language subtag the page declares (html lang, Content-Language, og:locale)."""
    if tree is None:
        return None
    candidates: list[str] = []
    root = tree.getroottree().getroot()
    candidates += [root.get("lang") or "", root.get(f"{{{_XML_NAMESPACE}}}lang") or ""]
    for meta in tree.iterfind(".//meta[@content]"):
        kind = (meta.get("http-equiv") or meta.get("property") or meta.get("name") or "").lower()
        if kind in ("content-language", "og:locale", "language"):
            candidates.append(meta.get("content") or "")
    for candidate in candidates:
        primary = re.split(r"[-_,;\s]", candidate.strip().lower(), maxsplit=1)[0]
        if _LANGUAGE_RE.fullmatch(primary):
            return primary
    return None


def _absolute_web_url(link: str | None, base: str | None) -> str | None:
    """`link` resolved against `base`, or None unless that gives an http(s) URL with a host."""
    if not link or not link.strip():
        return None
    absolute = urljoin(base, link.strip()) if base else link.strip()
    parts = urlsplit(absolute)
    if parts.scheme.lower() not in _WEB_SCHEMES or not parts.hostname:
        return None
    return absolute


def _text_of(element: Any) -> str:
    return "".join(element.itertext())


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.casefold())


def _normalise(text: str) -> str:
    """Text with case, Unicode compatibility forms and whitespace folded, for comparisons."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _no_content_message(url: str | None) -> str:
    where = f" at {url}" if url else ""
    return f"No article text could be found in the page{where}"
