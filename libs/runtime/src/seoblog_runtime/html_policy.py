"""The one HTML policy of seoblog (nh3 allow-list): the generator sanitises the posts it renders
with it, and the gateway sanitises every post it stores from the bus again with the same rules.

Images keep only relative addresses: an absolute or protocol-relative `src` (a tracking pixel,
a hot-linked picture of the source site) is removed, leaving an inert `<img alt>`."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import nh3

ALLOWED_TAGS = frozenset(
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
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"}
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
_CODE_CLASS_RE = re.compile(r"language-[\w+#.-]{1,40}")
# A scheme (`https:`, `data:`), or `//host`, `\\host` (browsers read `\` as `/`).
_EXTERNAL_RE = re.compile(r"^\s*(?:[a-zA-Z][a-zA-Z0-9+.-]*:|[/\\]{2})")
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_LD_BLOCK_RE = re.compile(
    r'<script type="application/ld\+json">(?P<json>.*?)</script>\s*', re.DOTALL
)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # markdown-it marks fenced code with class="language-x"; any other class is dropped.
    if tag == "code" and attribute == "class":
        return value if _CODE_CLASS_RE.fullmatch(value) else None
    if tag == "img" and attribute == "src" and _EXTERNAL_RE.match(value):
        return None
    return value


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        filter_style_properties={"text-align"},
        strip_comments=True,
    )


def sanitize_html(html: str) -> str:
    """Allow-list sanitising: no scripts, event handlers, styles, javascript:/data: URLs or
    external images."""
    return _cleaner().clean(html)


def script_json(data: Any) -> str:
    """A JSON-LD `<script>` block that is safe inside an HTML page (no `</script>` break-out)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in _JSON_ESCAPES.items():
        text = text.replace(raw, escaped)
    return f'<script type="application/ld+json">{text}</script>'


def sanitize_page(html: str) -> str:
    """A post page as the generator builds it (sanitised body, then JSON-LD blocks), checked
    again: the body goes through `sanitize_html`; each trailing JSON-LD block is kept only if
    it parses as JSON, and is written out again by `script_json`."""
    blocks: list[str] = []
    end = len(html)
    # Walk the JSON-LD blocks at the end of the page, last first.
    while True:
        found = _last_ld_block(html[:end])
        if found is None:
            break
        start, data = found
        if data is not None:
            blocks.append(script_json(data))
        end = start
    body = sanitize_html(html[:end])
    if not blocks:
        return body
    return body + "\n".join(reversed(blocks)) + "\n"


def _last_ld_block(html: str) -> tuple[int, Any] | None:
    stripped = html.rstrip()
    if not stripped.endswith("</script>"):
        return None
    start = stripped.rfind('<script type="application/ld+json">')
    if start < 0:
        return None
    match = _LD_BLOCK_RE.fullmatch(html, start)
    if match is None or "</script" in match.group("json").lower():
        return None
    try:
        return start, json.loads(match.group("json"))
    except ValueError:
        return start, None  # not JSON: dropped
