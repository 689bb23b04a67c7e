"""SEO measurement of a post: words, sentences, slugs, keyword matching and the scored SeoReport.

Pure code shared by the LLM and the offline writers; every number in a report is measured here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import sentencex
from markdown_it import MarkdownIt
from markdown_it.token import Token

from seoblog_contracts import SeoReport

TITLE_MIN_CHARS, TITLE_MAX_CHARS = 50, 60
META_MIN_CHARS, META_MAX_CHARS = 150, 160
DENSITY_MIN_PERCENT, DENSITY_MAX_PERCENT = 0.5, 2.5
LENGTH_TOLERANCE = 0.25
MAX_AVERAGE_SENTENCE_WORDS = 25.0
SHINGLE_WORDS = 8
MAX_SHARED_SHINGLES = 0.5
SLUG_MAX_CHARS = 60

# Weights sum to 100; checks that do not apply are left out and the score is rescaled.
CHECK_WEIGHTS: dict[str, int] = {
    "keyword_in_title": 12,
    "keyword_in_first_paragraph": 8,
    "keyword_in_heading": 8,
    "keyword_in_slug": 6,
    "keyword_in_meta": 8,
    "keyword_density_ok": 8,
    "length_ok": 10,
    "title_length_ok": 8,
    "meta_length_ok": 8,
    "heading_structure_ok": 10,
    "readability_ok": 7,
    "originality": 7,
}

# Scripts written without spaces: each character counts as a word and keywords match as substrings.
_NO_SPACE_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
# Combining marks that Python's \w does not cover (Indic vowel signs and the like).
_MARK_CHARS = "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0dff"
_LETTER = rf"(?:[^\W_{_NO_SPACE_CHARS}]|[{_MARK_CHARS}])"
_WORD_RE = re.compile(rf"[{_NO_SPACE_CHARS}]|{_LETTER}+(?:['’\-]{_LETTER}+)*")
_NO_SPACE_RE = re.compile(rf"[{_NO_SPACE_CHARS}]")

_LONG_SEGMENT_WORDS = 45
# Titles and abbreviations a sentence does not end on, whatever the language's rules say.
_NEVER_FINAL = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "rep.", "sen.", "gov.", "gen.", "lt.", "col."}
    | {"sgt.", "e.g.", "i.e.", "vs.", "no.", "nos."}
)
_NEUTRAL_QUOTES = str.maketrans(dict.fromkeys("\"'‘’“”«»„‚‹›", "\u02bc"))

_TRANSLITERATION = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
        "ı": "i",
    }
)


# A text with neither such characters nor those marks (most text) has the same words by a
# pattern of one character class, which the regex engine runs far faster than the alternation.
_SPECIAL_RE = re.compile(rf"[{_NO_SPACE_CHARS}{_MARK_CHARS}]")
_PLAIN_WORD_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


def words(text: str) -> list[str]:
    """Words of a text; in scripts written without spaces (CJK, Thai) each character is a word."""
    text = unicodedata.normalize("NFC", text)
    if _SPECIAL_RE.search(text) is None:
        return _PLAIN_WORD_RE.findall(text)
    return _WORD_RE.findall(text)


def count_words(text: str) -> int:
    return len(words(text))


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of a text, split at newlines and, inside a line, by sentencex (Wikimedia's
    rule-based segmenter for ~300 languages): abbreviations ("U.S.", "e.g.", "Dr."), names
    that end in a full stop ("The ID. Buzz"), initials and decimals do not split."""
    return list(_split_sentences(text, _segmenter_language(language)))


@lru_cache(maxsize=64)
def _split_sentences(text: str, code: str) -> tuple[str, ...]:
    """split_sentences, once per text and language: a post is scored when it is written and
    again when it is published, and the writers measure the same body more than once."""
    sentences: list[str] = []
    for line in text.split("\n"):
        merged: list[str] = []  # raw pieces, whitespace kept: joined, they are the line again
        for piece in _segments(code, line) if line.strip() else []:
            if merged and piece.strip() and _continues(merged[-1].strip(), piece.strip()):
                merged[-1] += piece
            else:
                merged.append(piece)
        sentences += [sentence for piece in merged if (sentence := piece.strip())]
    return tuple(sentences)


def _continues(previous: str, piece: str) -> bool:
    """True where sentencex split after a title or an initial it does not know ("ST. JOSEPH",
    "Prof. Carlos", "R-W.Va.", "Hueske-Kraus D.") or before a lower-case word."""
    if piece[:1].islower():
        return True
    last = previous.split()[-1].lstrip("(\"'“‘«[*_")
    letters = re.split(r"[^\w.]", last)[-1]
    return last.casefold() in _NEVER_FINAL or bool(re.fullmatch(r"[^\W\d_]\.", letters))


def _segments(code: str, line: str) -> list[str]:
    """sentencex does not split inside a quotation, so one stray opening quote mark makes the
    rest of a paragraph one sentence: a long piece is split again with its quote marks
    neutralised (same length, so the pieces still cut the original text)."""
    pieces: list[str] = []
    for piece in sentencex.segment(code, line):
        if count_words(piece) <= _LONG_SEGMENT_WORDS:
            pieces.append(piece)
            continue
        position = 0
        for part in sentencex.segment(code, piece.translate(_NEUTRAL_QUOTES)):
            pieces.append(piece[position : position + len(part)])
            position += len(part)
        if position < len(piece):
            pieces.append(piece[position:])
    return pieces


@lru_cache(maxsize=64)
def _segmenter_language(language: str) -> str:
    """The base language code sentencex knows ("pt-BR" -> "pt"); undetermined text is segmented
    with the English rules, which also cover the CJK, Devanagari and Arabic stops."""
    base = language.split("-")[0].split("_")[0].lower()
    return base if base.isalpha() and base not in ("und", "mul", "zxx", "mis") else "en"


def slugify(text: str, max_chars: int = SLUG_MAX_CHARS) -> str:
    """ASCII, lower-case, hyphenated slug; letters with no Latin transliteration become a hash."""
    text = unicodedata.normalize("NFC", text)
    untransliterated = any(ch.isalpha() and not ascii_slug(ch) for ch in text)
    if not untransliterated:
        return ascii_slug(text, max_chars) or "post"
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    prefix = ascii_slug(text, max_chars - len(digest) - 1)
    return f"{prefix}-{digest}" if prefix else digest


def ascii_slug(text: str, max_chars: int = SLUG_MAX_CHARS) -> str:
    """The transliterated part of a slug only (may be empty), cut on a hyphen to max_chars."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATION))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) <= max_chars:
        return slug
    head = slug[: max_chars + 1]
    return head.rsplit("-", 1)[0] if "-" in head else slug[:max_chars]


_LETTER_RE = re.compile(_LETTER)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@lru_cache(maxsize=64)
def _haystack(text: str) -> str:
    """A text folded, its whitespace runs made single spaces: the form keywords are sought in.
    Cached because one text is searched for many keywords (each check, each candidate term)."""
    return " ".join(_fold(text).split())


def count_keyword(text: str, keyword: str) -> int:
    """Case-insensitive, Unicode-aware count of whole-word occurrences of a keyword phrase
    (its words may be apart by any whitespace; in scripts without spaces, any occurrence).

    Plain string search and a one-character boundary test instead of a regex per keyword:
    compiling the Unicode letter classes cost milliseconds for each new keyword."""
    needle = " ".join(_fold(keyword).split())
    if not needle:
        return 0
    haystack = _haystack(text)
    if _NO_SPACE_RE.search(keyword):
        return haystack.count(needle)
    count, start, size = 0, 0, len(needle)
    while (at := haystack.find(needle, start)) >= 0:
        before = haystack[at - 1] if at else ""
        after = haystack[at + size : at + size + 1]
        if not (before and _LETTER_RE.match(before)) and not (after and _LETTER_RE.match(after)):
            count += 1
            start = at + size
        else:
            start = at + 1
    return count


def contains_keyword(text: str, keyword: str) -> bool:
    return count_keyword(text, keyword) > 0


_Check = Callable[[str, bool, str], None]


@dataclass(frozen=True)
class _Block:
    kind: str  # "heading", "paragraph", "table" or "code"
    text: str
    level: int = 0
    quoted: bool = False


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


@lru_cache(maxsize=16)
def _blocks(markdown: str) -> tuple[_Block, ...]:
    """The blocks of a markdown text, parsed once: a report reads the body and the source
    several times, and a revised post is scored against the same source again."""
    blocks: list[_Block] = []
    quote_depth = 0
    in_table = False
    heading_level = 0
    for token in _parser().parse(markdown):
        if token.type == "blockquote_open":
            quote_depth += 1
        elif token.type == "blockquote_close":
            quote_depth -= 1
        elif token.type in ("table_open", "table_close"):
            in_table = token.type == "table_open"
        elif token.type == "heading_open":
            heading_level = int(token.tag[1:])
        elif token.type == "heading_close":
            heading_level = 0
        elif token.type in ("fence", "code_block"):
            blocks.append(_Block("code", token.content, quoted=quote_depth > 0))
        elif token.type == "inline":
            kind = "heading" if heading_level else "table" if in_table else "paragraph"
            blocks.append(_Block(kind, _inline_text(token), heading_level, quote_depth > 0))
    return tuple(blocks)


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


def _content_blocks(markdown: str) -> tuple[_Block, ...]:
    """Blocks of the body without a leading blockquote (the writer's label)."""
    blocks = _blocks(markdown)
    start = 0
    while start < len(blocks) and blocks[start].quoted:
        start += 1
    return blocks[start:]


@lru_cache(maxsize=16)
def plain_text(markdown: str) -> str:
    """The readable text of markdown: no syntax, code or URLs; one block per line."""
    return "\n".join(block.text for block in _blocks(markdown) if block.kind != "code")


def _shingles(tokens: list[str] | tuple[str, ...]) -> set[tuple[str, ...]]:
    """The 8-word sequences of `tokens` (zip builds each tuple in C)."""
    if len(tokens) < SHINGLE_WORDS:
        return set()
    return set(zip(*(tokens[k:] for k in range(SHINGLE_WORDS)), strict=False))


def _folded(tokens: list[str] | tuple[str, ...]) -> list[str]:
    """Each word case-folded: one casefold of the words joined by a newline, which no word holds
    (case folding maps each character on its own, so the pieces are each word's folding)."""
    return "\n".join(tokens).casefold().split("\n") if tokens else []


def shared_shingle_share(post_text: str, source_text: str) -> float:
    """Share of the post's 8-word shingles that appear verbatim in the source (0 when too short)."""
    return _shared_share(words(post_text), _source(source_text).shingles)


def _shared_share(
    post_words: list[str] | tuple[str, ...], source: frozenset[tuple[str, ...]]
) -> float:
    post = _shingles(_folded(post_words))
    if not post:
        return 0.0
    return len(post & source) / len(post)


@dataclass(frozen=True)
class _SourceFacts:
    words: int
    shingles: frozenset[tuple[str, ...]]


@lru_cache(maxsize=8)
def _source(text: str) -> _SourceFacts:
    """A text's word count and shingles from one tokenisation, once per source: the length and
    originality checks read it, and the first draft and its revision share it."""
    tokens = words(text)
    return _SourceFacts(len(tokens), frozenset(_shingles(_folded(tokens))))


def _percent(value: float, bound: float) -> str:
    text = f"{value:.1f}"
    return f"{value:.2f}" if text == f"{bound:.1f}" else text


@dataclass(frozen=True)
class BodyMeasures:
    """What the length, density and readability checks measure in a post's body."""

    words: int
    keyword_uses: int
    sentences: int
    reading_words: float

    @property
    def density(self) -> float:
        return 100 * self.keyword_uses / self.words if self.words else 0.0

    @property
    def average_sentence_words(self) -> float:
        return self.reading_words / self.sentences if self.sentences else 0.0


@dataclass(frozen=True)
class _Body:
    """What seo_report and measure_body read in a post's body, tokenised once per markdown."""

    blocks: tuple[_Block, ...]  # without the leading blockquote
    text: str  # the readable text: every block but code, one a line
    prose: str  # the paragraphs only
    words: tuple[str, ...]  # words(text)
    prose_words: int  # count_words(prose)
    prose_no_space: int  # characters of scripts written without spaces in the prose


@lru_cache(maxsize=16)
def _body(markdown: str) -> _Body:
    """Each block is tokenised once: no word spans the newline that joins two blocks, and NFC
    composes nothing across it, so the words of the joined text are the blocks' words."""
    blocks = _content_blocks(markdown)
    texts: list[str] = []
    paragraphs: list[str] = []
    all_words: list[str] = []
    prose_words = prose_no_space = 0
    for block in blocks:
        if block.kind == "code":
            continue
        found = words(block.text)
        texts.append(block.text)
        all_words += found
        if block.kind == "paragraph":
            paragraphs.append(block.text)
            prose_words += len(found)
            prose_no_space += len(_NO_SPACE_RE.findall(block.text))
    return _Body(
        blocks,
        "\n".join(texts),
        "\n".join(paragraphs),
        tuple(all_words),
        prose_words,
        prose_no_space,
    )


def measure_body(markdown: str, keyword: str, language: str = "en") -> BodyMeasures:
    """The body's words, keyword uses and prose sentences, as seo_report counts them."""
    return _measure(_body(markdown), keyword, language)


def _measure(body: _Body, keyword: str, language: str) -> BodyMeasures:
    # Two CJK characters make about one word of reading effort.
    reading_words = body.prose_words - 0.5 * body.prose_no_space
    return BodyMeasures(
        words=len(body.words),
        keyword_uses=count_keyword(body.text, keyword) if keyword else 0,
        sentences=len(_split_sentences(body.prose, _segmenter_language(language))),
        reading_words=reading_words,
    )


def seo_report(
    *,
    title: str,
    slug: str,
    meta_description: str,
    markdown: str,
    keywords: list[str],
    target_words: int,
    source_text: str,
    language: str = "en",
) -> SeoReport:
    """Score a post from 0 to 100 with one reason, carrying the measured value, per failed check."""
    body = _body(markdown)
    blocks = body.blocks
    source = _source(plain_text(source_text))
    keyword = next((k.strip() for k in keywords if k.strip()), "")
    measures = _measure(body, keyword, language)
    body_words = measures.words
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    def check(name: str, ok: bool, reason: str) -> None:
        checks[name] = ok
        if not ok:
            reasons.append(reason)

    if keyword:
        _keyword_checks(check, reasons, keyword, title, slug, meta_description, blocks)
        occurrences, density = measures.keyword_uses, measures.density
        if density < DENSITY_MIN_PERCENT:
            bound = DENSITY_MIN_PERCENT
            reason = f"keyword density {_percent(density, bound)}% is below {bound}%"
        else:
            bound = DENSITY_MAX_PERCENT
            reason = f"keyword density {_percent(density, bound)}% is above {bound}%"
        check(
            "keyword_density_ok",
            DENSITY_MIN_PERCENT <= density <= DENSITY_MAX_PERCENT,
            f'{reason} ({occurrences} uses of "{keyword}" in {body_words} words)',
        )
    else:
        reasons.append("no keywords given: keyword checks are not applicable and not scored")

    if target_words > 0:
        check("length_ok", *_length_check(body_words, target_words, source.words))
    else:
        reasons.append("no target length given: length check is not applicable")

    check(
        "title_length_ok",
        TITLE_MIN_CHARS <= len(title) <= TITLE_MAX_CHARS,
        f"title is {len(title)} characters, outside {TITLE_MIN_CHARS}-{TITLE_MAX_CHARS}",
    )
    meta_chars = len(meta_description)
    check(
        "meta_length_ok",
        META_MIN_CHARS <= meta_chars <= META_MAX_CHARS,
        f"meta description is {meta_chars} characters, outside {META_MIN_CHARS}-{META_MAX_CHARS}",
    )
    structure_problems = _heading_problems(blocks)
    check("heading_structure_ok", not structure_problems, "; ".join(structure_problems))

    average = measures.average_sentence_words
    check(
        "readability_ok",
        bool(measures.sentences) and average <= MAX_AVERAGE_SENTENCE_WORDS,
        f"average sentence length {average:.1f} words is above {MAX_AVERAGE_SENTENCE_WORDS:g}"
        if measures.sentences
        else "the post has no prose sentences to read",
    )

    share = _shared_share(body.words, source.shingles)
    check(
        "originality",
        share < MAX_SHARED_SHINGLES,
        f"originality: {share:.0%} of the post's {SHINGLE_WORDS}-word sequences appear verbatim"
        f" in the source (must be below {MAX_SHARED_SHINGLES:.0%})",
    )

    applicable = sum(CHECK_WEIGHTS[name] for name in checks)
    passed = sum(CHECK_WEIGHTS[name] for name, ok in checks.items() if ok)
    score = round(100 * passed / applicable) if applicable else 0
    return SeoReport(score=score, checks=checks, reasons=reasons)


def _keyword_checks(
    check: _Check,
    reasons: list[str],
    keyword: str,
    title: str,
    slug: str,
    meta_description: str,
    blocks: tuple[_Block, ...],
) -> None:
    quoted = f'main keyword "{keyword}"'
    check("keyword_in_title", contains_keyword(title, keyword), f"{quoted} is not in the title")
    first = next((b for b in blocks if b.kind != "heading"), None)
    if first is None or first.kind != "paragraph":
        check("keyword_in_first_paragraph", False, "the post does not open with a paragraph")
    else:
        check(
            "keyword_in_first_paragraph",
            contains_keyword(first.text, keyword),
            f"{quoted} is not in the first paragraph",
        )
    headings = [b.text for b in blocks if b.kind == "heading" and b.level >= 2]
    check(
        "keyword_in_heading",
        any(contains_keyword(h, keyword) for h in headings),
        f"{quoted} is in no H2-H6 heading",
    )
    keyword_slug = ascii_slug(keyword, max_chars=10_000)
    if keyword_slug:
        check(
            "keyword_in_slug",
            f"-{keyword_slug}-" in f"-{slug}-",
            f'slug "{slug}" does not contain "{keyword_slug}"',
        )
    else:
        reasons.append(f"{quoted} has no Latin transliteration: slug check is not applicable")
    check(
        "keyword_in_meta",
        contains_keyword(meta_description, keyword),
        f"{quoted} is not in the meta description",
    )


def _length_check(body_words: int, target_words: int, source_words: int) -> tuple[bool, str]:
    deviation = (body_words - target_words) / target_words
    direction = "below" if deviation < 0 else "above"
    reason = (
        f"post has {body_words} words, {abs(deviation):.0%} {direction} the"
        f" {target_words}-word target (tolerance {LENGTH_TOLERANCE:.0%})"
    )
    if deviation < 0 and source_words < target_words:
        reason += f"; the source was short: it has only {source_words} words"
    return abs(deviation) <= LENGTH_TOLERANCE, reason


def _heading_problems(blocks: tuple[_Block, ...]) -> list[str]:
    levels = [b.level for b in blocks if b.kind == "heading"]
    problems: list[str] = []
    h1 = levels.count(1)
    if h1:
        problems.append(f"body has {h1} H1 heading(s); the title is the only H1")
    h2 = levels.count(2)
    if h2 < 2:
        problems.append(f"body has {h2} H2 heading(s), needs at least 2")
    previous = 1
    for level in levels:
        if level > previous + 1:
            problems.append(f"heading level skips from H{previous} to H{level}")
        previous = level
    return problems
