"""Pure extraction: HTML in, an Article out (body as markdown and plain text, metadata, links).

trafilatura finds the main content; nothing here touches the network, the broker or a database.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urldefrag, urljoin, urlsplit

import trafilatura
from htmldate import find_date
from lxml import etree
from trafilatura.core import ESCALATION_MAX_LENGTH, ESCALATION_PAGE_SHARE
from trafilatura.external import SANITIZED_XPATH
from trafilatura.metadata import (
    META_URL,
    examine_meta,
    extract_author,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
)
from trafilatura.settings import DEFAULT_CONFIG, Document, set_date_params
from trafilatura.utils import load_html
from trafilatura.xml import xmltotxt

# Absolute: extraction_score.py loads this file by path (--extractor .../extract.py:...),
# where a relative import has no package to be relative to.
from crawler.article import Article, ExtractionError

__all__ = ["Article", "ExtractionError", "extract_article", "extract_text", "warm_up"]

# Measured on shared/fixtures/extraction (4-gram F1): favor_precision 0.966, default 0.961,
# favor_recall 0.963 with comments left out; keeping reader comments costs about 0.005.
# Precision mode sometimes stops short of the article (a teaser, a caption). trafilatura's own
# rule for "stopped short" (its recall escalation, balanced mode only) is a result under
# ESCALATION_MAX_LENGTH characters covering under ESCALATION_PAGE_SHARE of the page's text;
# only then is recall mode asked as well (8 of the 121 fixtures), and its body is used when it
# has at least _SHORT_BY times as many words: 0.973, as with recall run on every page.
_BASE_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "include_formatting": True,
    # Not "python": that renders the body as text once more, which nobody here reads.
    "output_format": "markdown",
}
_PRECISION: dict[str, Any] = _BASE_OPTIONS | {"favor_precision": True}
# Precision mode's comparison with readability and justext (what "fast" leaves out) costs a
# third of a pass, pruning and reading a copy of the whole page; it can only change a result
# that is empty, short, without paragraph text, table-dominated or unclean. So the fast pass
# runs first, and the whole pass only when its result is one of those (10 of the 121 fixtures;
# on the others both give the same body).
_PRECISION_FAST: dict[str, Any] = _PRECISION | {"fast": True}
# fast: no readability/justext comparison; recall mode alone scores the same either way here.
_RECALL: dict[str, Any] = _BASE_OPTIONS | {"favor_recall": True, "fast": True}
_SHORT_BY = 2.0
_SHORT_CHARS = ESCALATION_MAX_LENGTH
_SHORT_SHARE = ESCALATION_PAGE_SHARE
_MIN_EXTRACTED_SIZE = DEFAULT_CONFIG.getint("DEFAULT", "MIN_EXTRACTED_SIZE")
# SANITIZED_XPATH is ".//aside|.//audio|...": found in one walk over the body instead of one each.
_SANITIZED_TAGS = tuple(path.removeprefix(".//") for path in SANITIZED_XPATH.split("|"))
# Characters of text (whitespace aside) on each side of a link that must be in the body too.
_CONTEXT = 30
# A link's sentence does not go past these (an inline wrapper such as <strong> it does).
_BLOCK_LEVEL = frozenset(
    {
        *("address", "article", "aside", "blockquote", "body", "caption", "dd", "details"),
        *("dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "html", "li", "main"),
        *("menu", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td"),
        *("tfoot", "th", "thead", "tr", "ul"),
    }
)
_CHROME = frozenset({"nav", "header", "footer", "aside", "menu"})
log = logging.getLogger("crawler.extract")
_WORD_RE = re.compile(r"\w+")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}")
_WEB_SCHEMES = ("http", "https")
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
# A call to action addressed to the reader, a short paragraph of its own ("Like this story?
# Share it with a friend!", "If you enjoyed this article, ...: Join ..."): the site's, not
# the article's (the writer would make a section, a takeaway and a heading of it). Only
# about the piece itself and asking to share, subscribe, join, follow or support; none of
# the 121 fixtures' ground truths has one, two of their extractions did.
_CALL_TO_ACTION_RE = re.compile(
    r"(?:(?:did|if) you )?(?:like|liked|enjoy|enjoyed|love|loved) (?:this|the|our) "
    r"(?:story|article|post|piece)\b.{0,120}?\b(?:share|subscribe|join|follow|support)\b"
    r"|share (?:this|the) (?:story|article|post) with (?:a friend|your friends)\b",
    re.IGNORECASE,
)
_CALL_TO_ACTION_CHARS = 200


ExtractMode = Literal["default", "precision", "recall"]
"""Named code paths an experiment variant may choose (override `crawler.extract_mode`):
default (precision, recall when it stopped short), precision alone, recall alone."""


def extract_article(html: str, url: str | None = None, mode: ExtractMode = "default") -> Article:
    """The article in `html`, its body as markdown; `url` resolves relative links."""
    tree = _parse(html)
    content = _main_content(tree, url, mode) if tree is not None else None
    if tree is None or content is None:
        raise ExtractionError(code="no_content", message=_no_content_message(url))
    document, plain = content
    body = document.body
    return Article(
        title=document.title or "",
        text=_markdown(body),  # takes the body apart: nothing reads it after this
        author=document.author or None,
        published=document.date or None,
        site_name=document.sitename or None,
        language=_declared_language(tree),
        canonical_url=_canonical_url(tree, url),
        image=_absolute_web_url(document.image, url),
        links=_body_links(tree, plain, url),
        content_hash=hashlib.sha256(_normalise(plain).encode("utf-8")).hexdigest(),
        word_count=len(_WORD_RE.findall(plain)),
    )


def extract_text(html: str, url: str | None = None) -> str | None:
    """The article body as plain text (no markdown), or None when there is none."""
    tree = _parse(html)
    content = _main_content(tree, url) if tree is not None else None
    return None if content is None else content[1]


def warm_up() -> None:
    """Load what the first extraction would otherwise load lazily: trafilatura's and
    htmldate's modules and compiled expressions, and dateparser, which htmldate loads the
    first time a date needs it (a second or more, once per process)."""
    words = " ".join(["Warming up the extractor with a paragraph of ordinary words."] * 8)
    page = (
        "<html lang=en><head><title>Warm up</title></head><body>"
        f"<time>November 20 15:23 2019</time><p>{words}</p></body></html>"
    )
    with contextlib.suppress(ExtractionError):
        extract_article(page, "https://example.com/warm-up")
    datetime.strptime("2019-11-20", "%Y-%m-%d")  # htmldate's validation imports _strptime


def _parse(html: str) -> Any:
    """The page parsed once; every pass below reads it (trafilatura copies what it changes)."""
    return load_html(html) if html and html.strip() else None


def _main_content(
    tree: Any, url: str | None, mode: ExtractMode = "default"
) -> tuple[Document, str] | None:
    """trafilatura's document with metadata and its body as plain text, or None when no body
    text was found: precision mode, unless it stopped short and recall mode finds at least
    _SHORT_BY times as much.

    A leading heading that repeats the title is dropped: the title is a field of its own.
    """
    page_size = functools.cache(lambda: _page_text_size(tree))  # for one pass or two
    if mode == "recall":
        document = trafilatura.bare_extraction(tree, url=url, **_RECALL)
    else:
        document = trafilatura.bare_extraction(tree, url=url, **_PRECISION_FAST)
        if not isinstance(document, Document) or _comparison_may_change(document, page_size):
            document = trafilatura.bare_extraction(tree, url=url, **_PRECISION)
    if not isinstance(document, Document) or document.body is None:
        return None
    if mode == "default" and _stopped_short(document, page_size):
        recall = trafilatura.bare_extraction(tree, url=url, **_RECALL)
        recall_body = recall.body if isinstance(recall, Document) else None
        if recall_body is not None and _word_count(recall_body) >= _SHORT_BY * _word_count(
            document.body
        ):
            document.body = recall_body
    body = document.body
    plain = xmltotxt(body, include_formatting=False)
    if not plain.strip():
        return None
    found = _metadata(tree, url)
    title = found.title
    if len(body) and body[0].tag == "head" and title and _words(_text_of(body[0])) == _words(title):
        body.remove(body[0])
        plain = xmltotxt(body, include_formatting=False)
        if not plain.strip():
            return None
    if _drop_calls_to_action(body):
        plain = xmltotxt(body, include_formatting=False)
        if not plain.strip():
            return None
    found.body = body
    return found, plain


def _drop_calls_to_action(body: Any) -> bool:
    """Remove the body's paragraphs that are only a call to action; whether any was."""
    dropped = False
    for child in list(body):
        if child.tag != "p":
            continue
        text = " ".join(_text_of(child).split())
        if len(text) <= _CALL_TO_ACTION_CHARS and _CALL_TO_ACTION_RE.match(text):
            if child.tail and child.tail.strip():  # remove() takes the tail with it: keep it
                previous = child.getprevious()
                if previous is None:
                    body.text = (body.text or "") + child.tail
                else:
                    previous.tail = (previous.tail or "") + child.tail
            body.remove(child)
            dropped = True
    return dropped


def _metadata(tree: Any, url: str | None) -> Document:
    """trafilatura's extract_metadata for the fields an Article has, in its order: the
    categories, tags and licence it also looks for (a third of its time) are left out."""
    found = examine_meta(tree)
    if found.author and " " not in found.author:
        found.author = None  # a single word is a handle more often than a name, as it finds
    try:
        found = extract_meta_json(tree, found)
    except Exception:  # trafilatura's JSON-LD reader has bugs; extract_metadata skips it too
        log.debug("JSON-LD metadata unreadable", exc_info=True)
    found.title = found.title or extract_title(tree)
    found.author = found.author or extract_author(tree)
    found.url = found.url or extract_url(tree, url)
    found.date = find_date(tree, **(set_date_params(extensive=True) | {"url": found.url}))
    found.sitename = found.sitename or extract_sitename(tree)
    if found.sitename:
        found.sitename = found.sitename.lstrip("@")
        if found.sitename and "." not in found.sitename and not found.sitename[0].isupper():
            found.sitename = found.sitename.title()
    elif found.url and (match := META_URL.match(found.url)):
        found.sitename = match[1]
    found.clean_and_trim()
    return found


def _comparison_may_change(document: Document, page_size: Callable[[], int]) -> bool:
    """Whether trafilatura's comparison with readability and justext (external.py,
    compare_extraction) could replace this precision result: it looks at them when the result
    is empty or under MIN_EXTRACTED_SIZE, unclean (SANITIZED_XPATH) or structurally deficient
    (no paragraph text, more tables than paragraphs); a readability text twice as long
    replaces it too, which a result that did not stop short (_stopped_short) hardly leaves
    room for."""
    body = document.body
    if body is None:
        return True
    size = len(document.raw_text or "")
    return (
        size < _MIN_EXTRACTED_SIZE
        or _stopped_short(document, page_size)
        or not body.xpath(".//p//text()")
        or len(body.findall(".//table")) > len(body.findall(".//p"))
        or next(body.iterdescendants(*_SANITIZED_TAGS), None) is not None
    )


def _stopped_short(document: Document, page_size: Callable[[], int]) -> bool:
    """trafilatura's test for a short result covering little of the page, on the text it
    measured itself; `page_size` counts the page's text (_page_text_size)."""
    found = len(document.raw_text or "")
    return found < _SHORT_CHARS and found < _SHORT_SHARE * page_size()


def _page_text_size(tree: Any) -> int:
    """The page's text without whitespace, scripts and styles (cheaper than trafilatura's
    html2txt, and a little less)."""
    body = tree.find("body")
    if body is None:
        return 0
    size = len(_squash(body.text_content()))
    for hidden in body.iter("script", "style", "noscript", "template"):
        size -= len(_squash(hidden.text_content()))
    return max(size, 0)


def _word_count(body: Any) -> int:
    return 0 if body is None else len(_WORD_RE.findall(" ".join(body.itertext())))


def _markdown(body: Any) -> str:
    """trafilatura's markdown, block by block, with block quotes marked as '> '. Each block
    is moved out of `body` into a holder of its own (a copy would cost more), so `body` is
    left empty."""
    blocks: list[str] = []
    if body.text and body.text.strip():
        blocks.append(body.text.strip())
    for child in list(body):
        holder = etree.Element("body")
        holder.append(child)  # with its tail, as a deep copy has it
        rendered = xmltotxt(holder, include_formatting=True).strip()
        if not rendered:
            continue
        blocks.append(_quoted(rendered) if child.tag == "quote" else rendered)
    return "\n\n".join(blocks)


def _quoted(markdown: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in markdown.split("\n"))


def _body_links(tree: Any, body_text: str, url: str | None) -> list[str]:
    """Absolute http(s) links inside the article body, in order, without duplicates.

    Read from the parsed page, not from a pass of trafilatura that keeps links (that pass
    keeps different text and costs a whole extraction): a link is in the body when its text,
    with the words just around it, is in the body text (whitespace aside); a link alone in its
    paragraph or list item must be a line of the body of its own. Links in navigation,
    headers, footers and asides never are.
    """
    haystack = _squash(body_text)
    lines = {_squash(cell) for line in body_text.splitlines() for cell in line.split("|")}
    own = urldefrag(url).url if url else None
    links: list[str] = []
    for anchor in tree.iterfind(".//a[@href]"):
        text = _squash(_text_of(anchor))
        if not text or text not in haystack or _in_chrome(anchor):
            continue
        before, after = _context(anchor)
        if not (before + text + after in haystack if before or after else text in lines):
            continue
        link = _absolute_web_url(anchor.get("href"), url)
        if link is None:
            continue
        link = urldefrag(link).url
        if link != own and link not in links:
            links.append(link)
    return links


def _context(anchor: Any) -> tuple[str, str]:
    """Up to _CONTEXT characters (whitespace aside) of the text before and after `anchor` in
    its paragraph, looking past inline wrappers such as <strong><a>...</a></strong>."""
    element = anchor
    while True:
        before, after = _text_before(element), _text_after(element)
        parent = element.getparent()
        if before or after or parent is None or parent.tag in _BLOCK_LEVEL:
            return before, after
        element = parent


def _text_before(element: Any) -> str:
    """The last _CONTEXT or so characters before `element` inside its parent."""
    pieces: list[str] = []
    size = 0
    for sibling in element.itersiblings(preceding=True):
        for piece in (sibling.tail or "", _text_of(sibling)):
            pieces.append(piece)
            size += len(piece)
        if size >= _CONTEXT:
            break
    else:
        parent = element.getparent()
        pieces.append(str(parent.text or "") if parent is not None else "")
    return _squash("".join(reversed(pieces)))[-_CONTEXT:]


def _text_after(element: Any) -> str:
    """The first _CONTEXT or so characters after `element` inside its parent."""
    pieces = [str(element.tail or "")]
    size = len(pieces[0])
    for sibling in element.itersiblings():
        if size >= _CONTEXT:
            break
        for piece in (_text_of(sibling), sibling.tail or ""):
            pieces.append(piece)
            size += len(piece)
    return _squash("".join(pieces))[:_CONTEXT]


def _in_chrome(element: Any) -> bool:
    return any(ancestor.tag in _CHROME for ancestor in element.iterancestors())


def _squash(text: str) -> str:
    """`text` without any whitespace."""
    return "".join(text.split())


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
