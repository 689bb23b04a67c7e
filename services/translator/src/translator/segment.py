"""Markdown segmentation for translation: token-budgeted segments, structure signature, and
placeholders that keep URLs, inline code and glossary terms out of the translator's hands.
"""

from __future__ import annotations

import math
import re

DEFAULT_MAX_TOKENS = 800

_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_DELIMITER_RE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_LIST_ITEM_RE = re.compile(r"^\s*(?:>\s*)*(?:[-*+]|\d{1,9}[.)])(?:\s+|$)")
_THEMATIC_BREAK_RE = re.compile(r"^ {0,3}([-*_])(\s*\1){2,}\s*$")
_LINK_RE = re.compile(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)|<https?://[^>\s]+>")
_INLINE_CODE_RE = re.compile(r"(`+)[^`\n](?:.*?[^`\n])??\1(?!`)")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+|(?<=[。！？])|\n")
_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\[\]\"'`]+")
_LINK_TARGET_RE = re.compile(r"(?<=\]\()[^)\s]+")
_PLACEHOLDER_RE = re.compile(r"⟦\s*(\d+)\s*⟧")
_TRAILING_URL_PUNCTUATION = ".,;:!?'\")]}"
_UNBREAKABLE_RE = re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)|(`+)[^`\n].*?\1")
_LEADING_BLANK_LINES_RE = re.compile(r"\A(?:[ \t]*\n)+")
_NO_SPACE_RE = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f]"
)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def normalize_markdown(markdown: str) -> str:
    """The form join_segments(split_segments(x)) returns: trailing spaces stripped, runs of
    blank lines collapsed to one, no blank lines at either end. Fenced code is kept verbatim."""
    return "\n\n".join(_blocks(markdown))


def _blocks(markdown: str) -> list[str]:
    """Blank-line separated blocks; a fenced code block is one block even with blank lines."""
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    for raw in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        marker = _FENCE_RE.match(raw)
        if fence:
            if _closes(marker, raw, fence):
                fence = ""
                current.append(raw.rstrip())
            else:
                current.append(raw)  # code is kept verbatim, trailing spaces and blank lines too
            continue
        line = raw.rstrip()
        if line:
            fence = marker.group(1) if marker else ""
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:  # an unclosed fence runs to the end
        blocks.append("\n".join(current).rstrip())
    return blocks


def _closes(marker: re.Match[str] | None, line: str, fence: str) -> bool:
    if marker is None:
        return False
    run = marker.group(1)
    return run[0] == fence[0] and len(run) >= len(fence) and not line.strip().strip(run[0])


def _is_table_delimiter(lines: list[str], number: int) -> bool:
    line = lines[number]
    previous = lines[number - 1] if number > 0 else ""
    return bool(_TABLE_DELIMITER_RE.match(line)) and ("|" in line or "|" in previous)


def _is_atomic(block: str) -> bool:
    """Fenced code and tables are never split, whatever their size."""
    lines = block.split("\n")
    return any(
        _FENCE_RE.match(line) or _is_table_delimiter(lines, number)
        for number, line in enumerate(lines)
    )


def split_segments(markdown: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
    """Pack whole blocks (paragraphs, lists, tables, code) into segments under max_tokens.

    A paragraph over budget is split on sentence boundaries, which turns its pieces into
    separate paragraphs when joined; a table or fenced code block over budget stays whole.
    """
    segments: list[str] = []
    current = ""
    for block in _blocks(markdown):
        pieces = [block]
        if estimate_tokens(block) > max_tokens and not _is_atomic(block):
            pieces = _split_block(block, max_tokens)
        for piece in pieces:
            candidate = f"{current}\n\n{piece}" if current else piece
            if current and estimate_tokens(candidate) > max_tokens:
                segments.append(current)
                current = piece
            else:
                current = candidate
    if current:
        segments.append(current)
    return segments


def _split_block(block: str, max_tokens: int) -> list[str]:
    """Pieces of an over-budget paragraph, cut after sentences, then words, then characters."""
    units = _spans(block, _SENTENCE_END_RE)
    pieces: list[str] = []
    start = units[0][0] if units else 0
    end = start
    for unit_start, unit_end in units:
        if end > start and estimate_tokens(block[start:unit_end].strip()) > max_tokens:
            pieces.append(block[start:end].strip())
            start = unit_start
        end = unit_end
    if end > start:
        pieces.append(block[start:end].strip())
    result: list[str] = []
    for piece in pieces:
        too_long = estimate_tokens(piece) > max_tokens
        result.extend(_split_words(piece, max_tokens) if too_long else [piece])
    return [p for p in result if p]


def _spans(text: str, boundary: re.Pattern[str]) -> list[tuple[int, int]]:
    """(start, end) of the units between boundary matches, each unit including its boundary."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in boundary.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _split_words(text: str, max_tokens: int) -> list[str]:
    """Cut at the last space under budget outside links and inline code; a single word or
    link longer than the budget stays whole (over budget) rather than being cut apart."""
    limit = max_tokens * 4
    pieces: list[str] = []
    while len(text) > limit:
        inside = [(m.start(), m.end()) for m in _UNBREAKABLE_RE.finditer(text)]
        spaces = [
            i
            for i, ch in enumerate(text)
            if ch.isspace() and i > 0 and not any(a < i < b for a, b in inside)
        ]
        if not spaces:
            break
        fitting = [i for i in spaces if i <= limit]
        cut = fitting[-1] if fitting else spaces[0]
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    return [*pieces, text]


def join_segments(segments: list[str]) -> str:
    """Reassemble segments; join_segments(split_segments(x)) == normalize_markdown(x)."""
    return "\n\n".join(_LEADING_BLANK_LINES_RE.sub("", segment).rstrip() for segment in segments)


def structure_signature(markdown: str) -> tuple[int, int, int, int, int]:
    """(headings, list items, links, code fences, table rows) outside fenced code.

    Equal signatures before and after translation mean the markdown structure survived.
    Table rows count the header and body rows, not the delimiter row."""
    headings = list_items = links = fences = table_rows = 0
    lines = markdown.replace("\r\n", "\n").split("\n")
    fence = ""
    number = 0
    while number < len(lines):
        line = lines[number]
        marker = _FENCE_RE.match(line)
        number += 1
        if fence:
            fence = "" if _closes(marker, line, fence) else fence
            continue
        if marker:
            fence = marker.group(1)
            fences += 1
            continue
        if "|" in line and number < len(lines) and _is_table_delimiter(lines, number):
            table_rows += 1
            links += _count_links(line)
            number += 1
            while number < len(lines) and "|" in lines[number] and lines[number].strip():
                table_rows += 1
                links += _count_links(lines[number])
                number += 1
            continue
        if _HEADING_RE.match(line):
            headings += 1
        elif _LIST_ITEM_RE.match(line) and not _THEMATIC_BREAK_RE.match(line):
            list_items += 1
        links += _count_links(line)
    return headings, list_items, links, fences, table_rows


def _count_links(line: str) -> int:
    if "]" not in line and "<" not in line:
        return 0  # no link can match, even once inline code is cut out (most prose lines)
    return len(_LINK_RE.findall(_INLINE_CODE_RE.sub("", line)))


def protect(text: str, glossary: list[str]) -> tuple[str, dict[str, str]]:
    """Swap inline code, URLs and glossary terms (case-sensitive, whole words) for ⟦n⟧.

    The same original gets the same placeholder; restore() puts the originals back."""
    terms = sorted({t for t in glossary if t.strip()}, key=lambda t: (-len(t), t))
    alternatives = [_INLINE_CODE_RE.pattern, _LINK_TARGET_RE.pattern, _URL_RE.pattern]
    alternatives += [_term_pattern(term) for term in terms]
    pattern = re.compile("|".join(f"(?:{a})" for a in alternatives))
    mapping: dict[str, str] = {}
    numbers: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        original, tail = match.group(), ""
        if _URL_RE.fullmatch(original):
            original, tail = _trim_url(original)
        if original not in numbers:
            numbers[original] = f"⟦{len(numbers)}⟧"
            mapping[numbers[original]] = original
        return numbers[original] + tail

    return pattern.sub(swap, text), mapping


def _term_pattern(term: str) -> str:
    """Whole-word match, except at an edge in a script written without spaces (CJK, Thai)."""
    before = "" if _NO_SPACE_RE.match(term[0]) else r"(?<!\w)"
    after = "" if _NO_SPACE_RE.match(term[-1]) else r"(?!\w)"
    return f"{before}{re.escape(term)}{after}"


def _trim_url(url: str) -> tuple[str, str]:
    """Split off sentence punctuation and an unbalanced closing bracket after a bare URL."""
    end = len(url)
    while end and url[end - 1] in _TRAILING_URL_PUNCTUATION:
        if url[end - 1] == ")" and url[:end].count("(") >= url[:end].count(")"):
            break
        end -= 1
    return url[:end], url[end:]


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put protected originals back; tolerant of spaces a translator puts inside ⟦ n ⟧."""

    def back(match: re.Match[str]) -> str:
        return mapping.get(f"⟦{int(match.group(1))}⟧", match.group())

    return _PLACEHOLDER_RE.sub(back, text)
