"""Pure: a page's bytes to text as browsers decode it (BOM, HTTP charset, <meta charset>,
UTF-8), in the extraction process; the fetcher's content sniffing reads PRESCAN_BYTES too."""

from __future__ import annotations

import codecs
import re

__all__ = ["PRESCAN_BYTES", "decode_html"]

# The HTML spec looks for <meta charset> in the first 1024 bytes; a little slack costs nothing.
PRESCAN_BYTES = 2048
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Browsers read these labels as windows-1252 (WHATWG Encoding Standard); so do we.
_WINDOWS_1252_CODECS = frozenset({"iso8859-1", "ascii"})


def decode_html(body: bytes, header_charset: str | None) -> str:
    """Decode as browsers do: BOM, then the HTTP charset, then <meta charset>, then UTF-8."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    codec = _codec(header_charset) or _codec(_meta_charset(body), from_meta=True) or "utf-8"
    return body.decode(codec, errors="replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET_RE.search(body[:PRESCAN_BYTES])
    return match.group(1).decode("ascii") if match else None


def _codec(label: str | None, *, from_meta: bool = False) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    if name in _WINDOWS_1252_CODECS:
        return "cp1252"
    # A UTF-16 label in an ASCII-readable <meta> cannot be right; browsers use UTF-8.
    if from_meta and name.startswith("utf-16"):
        return "utf-8"
    return name
