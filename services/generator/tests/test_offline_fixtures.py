"""Every fixture page through the crawler's extraction and the offline writer, scored by the real
SEO report: no sentence cut short, and the score each page gets."""

from __future__ import annotations

import gzip
import json
import re
import statistics
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from crawler.extract import extract_article
from generator.offline import write_offline
from generator.seo import (
    count_keyword,
    count_words,
    measure_body,
    seo_report,
    split_sentences,
    words,
)

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared/fixtures/extraction"
NATIVE_ADS = "dfd43bc0"  # my6sense's native ad units study
VW_SPACE_VIZZION = (
    "06ee193de4bd611f7fafbab0c59b0f6fe3495093516720632cd093b24c7a0e98"  # "The ID. SPACE VIZZION"
)
# A sentence never ends on these: a title before a name, "e.g.", a model name ("The ID. Buzz").
NEVER_FINAL = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "e.g.", "i.e.", "vs.", "no.", "nos.", "fig."}
    | {"gen.", "sen.", "rep.", "gov.", "id."}
)
BOUNDARY_BEFORE = re.compile(r"(^|[.!?…。！？:;\"”’)»|*]|\]\(.*?\))\s*$")
TERMINAL = re.compile(r"[.!?…。！？।؟][\"'”’»)\]」』）*]*$")
EMPHASIS = re.compile(r"\*\*|__|\*|`")
LIST_PREFIX = re.compile(r"^\s*(>\s*)*([-*+]|\d{1,3}[.)])?\s+")
DEFAULT_LENGTH = 800
NO_SPACE_TERM = re.compile("[\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")
FUNCTION_WORDS = frozenset(
    ("about", "after", "again", "their", "there", "these", "those", "which", "while", "where")
)


@dataclass(frozen=True)
class Case:
    page_id: str
    title: str
    text: str
    language: str
    keyword: str
    length: int


@cache
def cases() -> list[Case]:
    truth = json.loads((FIXTURES / "ground-truth.json").read_text())
    found = []
    for page_id in sorted(truth):
        raw = gzip.decompress((FIXTURES / "html" / f"{page_id}.html.gz").read_bytes())
        article = extract_article(raw.decode("utf-8", "replace"), truth[page_id]["url"])
        language = (article.language or "en").split("-")[0]
        source_words = count_words(article.text)
        # The length the source can fill (an extractive writer cannot write more), at most 800.
        length = max(300, min(DEFAULT_LENGTH, 50 * (int(0.9 * source_words) // 50)))
        found.append(
            Case(page_id, article.title, article.text, language, keyword_of(article), length)
        )
    return found


def keyword_of(article: object) -> str:
    """What a user would type: the title's word (five letters or more, no function word) the
    article uses most.

    A title written without spaces (Japanese, Chinese) has no such word, as each character
    counts as one; its user types a term of the title instead: two to four kanji, hanzi or
    katakana in a row (the content words of those scripts; hiragana are mostly particles and
    endings), the one the article uses most, the longer one on a tie."""
    title, text = getattr(article, "title", ""), getattr(article, "text", "")
    candidates = [w for w in words(title) if len(w) >= 5 and w.casefold() not in FUNCTION_WORDS]
    if candidates or not NO_SPACE_TERM.search(title):
        return max(candidates, key=lambda w: count_keyword(text, w), default="")
    terms = sorted(
        run[start:end]
        for run in NO_SPACE_TERM.findall(title)
        for start in range(len(run) - 1)
        for end in range(start + 2, min(len(run), start + 4) + 1)
    )
    return max(terms, key=lambda t: (count_keyword(text, t), len(t)))


def output_lines(markdown: str, keyword: str) -> list[str]:
    """The prose of a post: paragraphs, list items and FAQ answers, without the label, headings
    and the "**Keyword:**" the writer puts before an intro that lacks the keyword."""
    found = []
    for line in markdown.splitlines()[1:]:  # the first line is the writer's label
        if not line.strip() or line.startswith(("#", "|")):  # tables: see table_rows
            continue
        line = line.removeprefix("- ").removeprefix(f"**{keyword[:1].upper()}{keyword[1:]}:** ")
        found.append(squash(line))
    return found


def cells(line: str) -> tuple[str, ...]:
    return tuple(squash(cell) for cell in line.strip().strip("|").split("|"))


def table_rows(case: Case, markdown: str) -> list[str]:
    """Table rows of the post that are not rows of a table in the source (a delimiter row and
    a row of "…" for rows left out are the writer's own)."""
    source = {cells(line) for line in case.text.splitlines() if line.lstrip().startswith("|")}
    bad = []
    for line in markdown.splitlines():
        row = cells(line)
        if not line.startswith("|") or row in source or set(row) <= {"---", "…"}:
            continue
        bad.append(line)
    return bad


def whole_sentences(line: str, sentences: set[str]) -> list[str] | None:
    """The line as a run of whole source sentences, or None when some part is not one."""
    found: list[str] = []
    while line:
        fits = [s for s in sentences if line == s or line.startswith(s + " ")]
        if not fits:
            return None
        longest = max(fits, key=len)
        found.append(longest)
        line = line[len(longest) :].lstrip()
    return found


def fragments(case: Case, markdown: str, keyword: str | None = None) -> list[str]:
    """Output prose that is not made of whole source sentences (see cut_short)."""
    keyword = case.keyword if keyword is None else keyword
    lines = source_lines(case.text)
    raw = raw_lines(case.text)
    sentences = {squash(s) for line in raw for s in split_sentences(line, case.language)}
    bad = []
    for line in output_lines(markdown, keyword):
        pieces = whole_sentences(line, sentences)
        if pieces is None:
            bad.append(line)
        else:
            bad += [p for p in pieces if cut_short(p, lines)]
    return bad


def raw_lines(text: str) -> list[str]:
    """The source's lines as the writer reads them: list markers off, table cells apart."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            found += line.strip().strip("|").split("|")
        else:
            found.append(LIST_PREFIX.sub("", line, count=1))
    return found


def source_lines(text: str) -> list[str]:
    return [squash(line) for line in raw_lines(text)]


def squash(text: str) -> str:
    """Whitespace made single, emphasis marks and markdown escapes dropped (the writer may cut
    an emphasised run of sentences into whole sentences, leaving one "*" on either side)."""
    return " ".join(EMPHASIS.sub("", text).replace("\\", "").split())


def cut_short(sentence: str, lines: list[str]) -> bool:
    """True unless the sentence is a whole sentence of the source: found verbatim where a source
    sentence starts (line start or after a stop that is no abbreviation) and ending where one
    ends (a stop that is no abbreviation, or the end of the source line)."""
    sentence = squash(sentence)
    last = sentence.split()[-1].casefold().lstrip("(\"'“‘")
    if last in NEVER_FINAL:
        return True
    for line in lines:
        start = line.find(sentence)
        while start >= 0:
            before, after = line[:start], line[start + len(sentence) :]
            previous = before.split()[-1].casefold() if before.split() else ""
            starts = BOUNDARY_BEFORE.search(before) and previous not in NEVER_FINAL
            # A stop glued to the next sentence ("Daten.Weder") ends one; an initial does not.
            glued = not after[:1].islower() and not re.search(r"(^|\W)\w\.$", sentence)
            ends = not after.strip() or (TERMINAL.search(sentence) and (after[:1] == " " or glued))
            if starts and ends:
                return False
            start = line.find(sentence, start + 1)
    return True


# The pages an extractive writer cannot bring to 90 without writing sentences of its own, and
# the checks they fail (besides originality, which an extractive post fails by design):
BELOW_90 = {
    # Sources of long sentences, split right (the long ones are one sentence each, or a quote
    # with its attribution): 30-33 words on average, with four, two, two and one of 25 words
    # or fewer (one of 4a44ab3e's is "Share it with a friend!"). A post of them long enough
    # averages 25 words or fewer only by saying those few short sentences twice or more.
    "39d5c43b": {"readability_ok"},
    "4a44ab3e": {"readability_ok"},
    "5a822960": {"readability_ok"},
    "b6fb53e9": {"readability_ok"},
    # 97 and 71 words of sentences for a 300-word post: too short however often they are said.
    # The first has "State" 4 times in its 6 sentences (4.1% of its words); the intro and a
    # heading must carry it too. The second, its keyword dense enough with no restated keyword
    # sentence, scores 89: length_ok weighs 10 of 94 (no slug check for a Cyrillic keyword).
    "3ce1c8fd": {"keyword_density_ok", "length_ok"},
    "c4a3637c": {"length_ok"},
}


def scored(case: Case, length: int) -> tuple[int, set[str], list[tuple[str, str]]]:
    """The post's score, its failed checks but originality, and its sentences cut short."""
    keywords = [case.keyword] if case.keyword else []
    draft = write_offline(
        title=case.title, text=case.text, keywords=keywords, language=case.language, length=length
    )
    failures = [(case.page_id[:8], s) for s in fragments(case, draft.markdown)]
    failures += [(case.page_id[:8], row) for row in table_rows(case, draft.markdown)]
    report = seo_report(
        title=draft.title,
        slug=draft.slug,
        meta_description=draft.meta_description,
        markdown=draft.markdown,
        keywords=keywords,
        target_words=length,
        source_text=case.text,
        language=case.language,
    )
    failed = {name for name, ok in report.checks.items() if not ok} - {"originality"}
    return report.score, failed, failures


@pytest.mark.slow  # extracting 121 pages and writing a post of each: about 20 s on a quiet machine
def test_every_fixture_post_is_made_of_whole_source_sentences_and_scores_90_or_more() -> None:
    failures: list[tuple[str, str]] = []
    low: dict[str, tuple[int, set[str]]] = {}
    for case in cases():
        score, failed, cut = scored(case, case.length)
        failures += cut
        if score < 90 or case.page_id[:8] in BELOW_90:
            low[case.page_id[:8]] = (score, failed)
    assert not failures, failures[:10]
    # Measured: 115 of 121 pages score 90 or more, median 93, lowest 75.
    assert {page: failed for page, (_, failed) in low.items()} == BELOW_90
    assert all(score >= 75 for score, _ in low.values()), low


@pytest.mark.slow
def test_at_800_words_no_sentence_is_cut_short_and_most_posts_score_90_or_more() -> None:
    """At a fixed 800 words many sources are too short to fill the length (the report says so):
    measured 88 of 121 pages at 90 or more, median 93."""
    failures: list[tuple[str, str]] = []
    scores: list[int] = []
    for case in cases():
        score, _, cut = scored(case, DEFAULT_LENGTH)
        failures += cut
        scores.append(score)
    assert not failures, failures[:10]
    assert sum(score >= 90 for score in scores) >= 88, sorted(scores)
    assert statistics.median(scores) >= 93


@pytest.mark.slow
def test_a_post_of_long_sentences_gets_no_closing_that_makes_them_longer_on_average() -> None:
    """The closing added to lower the average sentence length holds only sentences shorter
    than the average (there are none on these pages: the post ends with its questions)."""
    for case in cases():
        if "readability_ok" not in BELOW_90.get(case.page_id[:8], set()):
            continue
        keywords = [case.keyword] if case.keyword else []
        draft = write_offline(
            title=case.title,
            text=case.text,
            keywords=keywords,
            language=case.language,
            length=case.length,
        )
        measured = measure_body(draft.markdown, case.keyword, case.language)
        *_, questions, last = draft.markdown.split("\n## ")
        if "\n### " not in questions or "\n### " in last:
            continue  # the post ends with its questions: it has no closing
        blocks = last.split("\n\n")[1:]
        closing = [s for block in blocks for s in split_sentences(block, case.language)]
        longest = max(count_words(s) for s in closing)
        assert longest < measured.average_sentence_words, (case.page_id[:8], closing)


def test_the_id_space_vizzion_sentences_stay_whole() -> None:
    case = next(c for c in cases() if c.page_id == VW_SPACE_VIZZION)
    draft = write_offline(
        title=case.title, text=case.text, keywords=["SPACE VIZZION"], language="en", length=800
    )
    lines = output_lines(draft.markdown, "SPACE VIZZION")
    sentences = [s for line in lines for s in split_sentences(line)]
    assert any("the ID. SPACE VIZZION a near-50:50 weight distribution." in s for s in sentences)
    assert not [s for s in sentences if s.startswith("SPACE VIZZION")]
    assert not fragments(case, draft.markdown, "SPACE VIZZION")


def test_the_repair_stops_going_round_between_too_long_and_too_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 650 and 750 words the native ads study's repair went round a cycle ("too long: drop
    the longest sentence", "too short: add the best one") for all its 4 x 60 moves: 480 moves,
    where the post it ends on is known after a few dozen."""
    import generator.offline as offline

    case = next(c for c in cases() if c.page_id.startswith(NATIVE_ADS))
    moves: list[int] = []
    original = offline._repair

    def counted(*args: object, **kwargs: object) -> bool:
        moves.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(offline, "_repair", counted)
    for length in (650, 750):
        moves.clear()
        draft = write_offline(
            title=case.title, text=case.text, keywords=[case.keyword], language="en", length=length
        )
        assert len(moves) < 60, (length, len(moves))
        assert not fragments(case, draft.markdown)


def draft_of(page: str) -> tuple[Case, list[tuple[str, str]]]:
    case = next(c for c in cases() if c.page_id.startswith(page))
    draft = write_offline(
        title=case.title,
        text=case.text,
        keywords=[case.keyword],
        language=case.language,
        length=case.length,
    )
    return case, draft.faq


def test_faq_questions_ask_about_nouns_not_modifiers_or_parts_of_longer_names() -> None:
    """Issue 13: "Chinese" (of "Chinese goods"), "Interior" (of "Interior Minister"), "the
    immune" (of "the immune system"), "York" (of "New York"), numbers: no question asks
    about them; the FAQ keeps its number of questions with terms a reader would ask about."""
    asked_before = {
        "39d5c43b": ("What is known about Chinese?", 4),
        "5a822960": ("What is known about Interior?", 4),
        "bdb56ac8": ("What is known about the immune?", 3),
        "7a457a4f": ("What is known about York?", 2),
        "ba4dfe2d": ("What is known about the three?", 2),
        "e7d77f18": ("What is known about best early?", 4),
    }
    for page, (question, number) in asked_before.items():
        _, faq = draft_of(page)
        questions = [q for q, _ in faq]
        assert question not in questions, (page, questions)
        assert len(questions) == number, (page, questions)
    _, faq = draft_of("39d5c43b")
    assert "What is known about Beijing?" in [q for q, _ in faq]


def test_a_faq_short_of_questions_about_names_answers_under_a_general_question() -> None:
    """The Russian page's only term question was about «каждый раз» ("every time"): its answer
    stays, under a general question."""
    case, faq = draft_of("c4a3637c")
    assert [q for q, _ in faq] == ["Что ещё нужно знать?"]
    assert all(a in case.text for _, a in faq)


def test_a_repair_cycle_ends_on_the_state_its_moves_would_end_on() -> None:
    from generator.offline import _cycle_end

    # States 0 1 2 3 2 3 2 …: step 4 repeats step 2; 60 moves end on state 2 (period 2).
    assert _cycle_end(2, 4, 60) == 2
    assert _cycle_end(2, 4, 61) == 3
    # 0 1 2 1 2 …: 60 moves end on 2 (even steps from 2 on are 2, odd ones 1: 60 is even).
    assert _cycle_end(1, 3, 60) == 2
    assert _cycle_end(0, 3, 60) == 0  # a cycle of three from the start: 60 = 3 x 20


def test_a_sentence_broken_by_a_paragraph_break_is_left_out_and_the_post_still_reads_well() -> None:
    """The extracted page has "… provide publishers with an" and "effective way to recirculate
    …" as two paragraphs; without the rest of that sentence, the framing that would fill its
    place with long sentences (average above 25 words) is left out: the post was long enough."""
    case = next(c for c in cases() if c.page_id.startswith(NATIVE_ADS))
    assert "effective way to recirculate" in case.text
    for length in (case.length, DEFAULT_LENGTH):
        draft = write_offline(
            title=case.title,
            text=case.text,
            keywords=[case.keyword],
            language=case.language,
            length=length,
        )
        assert "effective way to recirculate" not in draft.markdown, length
    score, failed, _ = scored(case, case.length)
    assert score >= 90, failed


def test_the_cut_short_check_catches_a_sentence_cut_at_an_abbreviation() -> None:
    lines = source_lines(
        "The ID. SPACE VIZZION has a near-50:50 weight distribution. It is sold in the U.S. "
        "from 2022, e.g. in California."
    )
    assert cut_short("SPACE VIZZION has a near-50:50 weight distribution.", lines)
    assert cut_short("The ID.", lines)
    assert cut_short("in California.", lines)
    assert not cut_short("The ID. SPACE VIZZION has a near-50:50 weight distribution.", lines)
    assert not cut_short("It is sold in the U.S. from 2022, e.g. in California.", lines)


def test_split_sentences_keeps_model_names_and_abbreviations_inside_their_sentence() -> None:
    text = "The ID. Buzz is a van. It came to the U.S. market, e.g. in California. Mr. Li came."
    assert split_sentences(text) == [
        "The ID. Buzz is a van.",
        "It came to the U.S. market, e.g. in California.",
        "Mr. Li came.",
    ]


def test_the_keyword_of_a_title_without_spaces_is_its_term_the_article_uses_most() -> None:
    text = "商標権侵害になるのでしょうか。商標には機能があります。商品を改造した。商標法違反。"
    japanese = Case("", "商品の改造が商標法違反に！？", text, "ja", "", 300)
    assert keyword_of(japanese) == "商標"
    kindle = Case("", "Kindle for PCを立ち上げる方法", "Kindleの方法。方法。", "ja", "", 300)
    assert keyword_of(kindle) == "Kindle"  # a word of five letters: the user types it


def distribution(length: int | None = None) -> str:
    """The scores at each page's length (None) or at a fixed length, and the pages below 90."""
    scores: dict[str, tuple[int, set[str]]] = {}
    for case in cases():
        score, failed, _ = scored(case, length or case.length)
        scores[case.page_id[:8]] = (score, failed)
    values = sorted(score for score, _ in scores.values())
    below = {page: found for page, found in sorted(scores.items()) if found[0] < 90}
    return (
        f"{'each page its length' if length is None else f'{length} words'}: "
        f"{sum(v >= 90 for v in values)} of {len(values)} at 90 or more, "
        f"median {statistics.median(values)}, lowest {values[0]}; below 90: {below}"
    )


if __name__ == "__main__":  # uv run python services/generator/tests/test_offline_fixtures.py
    sys.stdout.write(f"{distribution()}\n{distribution(DEFAULT_LENGTH)}\n")
