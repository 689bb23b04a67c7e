"""The offline extractive writer: a labelled SEO draft built only from the source's own sentences.

Used when no LLM is configured. Pure and deterministic: the same input always gives the same draft.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .seo import (
    DENSITY_MAX_PERCENT,
    DENSITY_MIN_PERCENT,
    LENGTH_TOLERANCE,
    MAX_AVERAGE_SENTENCE_WORDS,
    META_MAX_CHARS,
    META_MIN_CHARS,
    TITLE_MAX_CHARS,
    TITLE_MIN_CHARS,
    BodyMeasures,
    ascii_slug,
    contains_keyword,
    count_keyword,
    count_words,
    measure_body,
    slugify,
    split_sentences,
    words,
)

OFFLINE_LABEL = (
    "> Written offline by seoblog's extractive writer (no LLM was configured);"
    " sentences are taken from the source article."
)
MIN_SECTIONS, MAX_SECTIONS = 3, 6
WORDS_PER_SECTION = 250

_FRAMING: dict[str, tuple[str, str, str, str, str]] = {
    # language: (takeaways heading, FAQ heading, question about a term, closing heading,
    # a general question)
    "en": (
        "Key takeaways",
        "Frequently asked questions",
        "What is known about {}?",
        "In short",
        "What else is worth knowing?",
    ),
    "de": (
        "Das Wichtigste in Kürze",
        "Häufige Fragen",
        "Was sollte man über {} wissen?",
        "Fazit",
        "Was sollte man noch wissen?",
    ),
    "fr": (
        "À retenir",
        "Questions fréquentes",
        "Que faut-il savoir sur {} ?",
        "En bref",
        "Que faut-il savoir d’autre ?",
    ),
    "es": (
        "Puntos clave",
        "Preguntas frecuentes",
        "¿Qué hay que saber sobre {}?",
        "En resumen",
        "¿Qué más hay que saber?",
    ),
    "it": (
        "Punti chiave",
        "Domande frequenti",
        "Cosa sapere su {}?",
        "In breve",
        "Cos’altro c’è da sapere?",
    ),
    "pt": (
        "Pontos-chave",
        "Perguntas frequentes",
        "O que é preciso saber sobre {}?",
        "Em resumo",
        "O que mais é preciso saber?",
    ),
    "nl": (
        "Belangrijkste punten",
        "Veelgestelde vragen",
        "Wat moet je weten over {}?",
        "Kortom",
        "Wat moet je nog meer weten?",
    ),
    "pl": (
        "Najważniejsze wnioski",
        "Często zadawane pytania",
        "Co warto wiedzieć o: {}?",
        "W skrócie",
        "Co jeszcze warto wiedzieć?",
    ),
    "ru": (
        "Главное",
        "Часто задаваемые вопросы",
        "Что нужно знать о «{}»?",
        "Коротко",
        "Что ещё нужно знать?",
    ),
    "uk": (
        "Головне",
        "Поширені запитання",
        "Що варто знати про «{}»?",
        "Коротко",
        "Що ще варто знати?",
    ),
    "ja": (
        "要点",
        "よくある質問",
        "「{}」について知っておくべきことは？",
        "まとめ",
        "ほかに知っておくべきことは？",
    ),
    "zh": ("要点", "常见问题", "关于“{}”需要了解什么？", "总结", "还需要了解什么？"),
}

_STOPWORDS = frozenset(
    " ".join(
        (
            "a about above after again against all also although am among an and another any are",
            "around as at be because been before being below between both but by can could did do",
            "does doing done down during each either even ever every few for from further had has",
            "have having he her here hers herself him himself his how however i if in into is it",
            "its itself just least less like made make many may me might more most much must my",
            "myself near neither never new no nor not now of off often on once one only or other",
            "others our ours ourselves out over own per perhaps quite rather really said same say",
            "says she should since so some still such than that the their theirs them themselves",
            "then there these they this those though through thus to too under until up upon us",
            "very was we well were what when where whether which while who whom whose why will",
            "with within without would yet you your yours yourself yourselves first last get got",
            "going told year years time times way ways people thing things lot lots back right",
            "found show showed shown appear appeared discover discovered known become became begin",
            "began called seen see help helps use used using according including several seem",
            "seems seemed take took taken came come went want wanted",
            "it's i'm i've i'd i'll you've you're you'll we're we've they're they've he's she's",
            "that's there's what's let's don't doesn't didn't isn't aren't wasn't weren't can't",
            "won't wouldn't couldn't shouldn't haven't hasn't",
            "aber alle als also am an auch auf aus bei bin bis da damit dann das dass dem den der",
            "des die doch dort durch ein eine einem einen einer eines er es für hat hatte ich ihr",
            "im in ist ja kann mit nach nicht noch nur oder schon sich sie sind so über um und",
            "uns von vor war wie wir wird wurde zu zum zur au aux avec ce ces cette dans de des",
            "du elle en est et il ils je la le les leur lui mais me même nous on ou par pas plus",
            "pour qu que qui sa se ses son sont sur ta te tu un une vous été al como con del el",
            "ella en es esta este están hay la las lo los más muy para pero por que se sin sobre",
            "su sus una uno unos y ya che chi della delle dei gli il nel nella non per più sono",
            "una uno ao aos com da das do dos em essa esse isso mais mas na nas no nos não os",
            "pela pelo seu sua um uma als bij dan dat de den der die een en het hij in is met",
            "naar niet of om ook op te van voor was wat worden zijn а без бы был была были было в",
            "вам вас во вот все всё вы где да для до его ее её если есть ещё же за и из или им их",
            "к как ко когда который кто ли мы на над не нет но о об он она они оно от по при с со",
            "zwischen werden worden können könnte sollen soll sollte müssen muss haben habe",
            "hatten sein seine seiner seinem seinen ihre ihren ihrem ihrer dieser diese dieses",
            "diesem diesen jeder jede jedes wenn weil sowie bereits sowohl etwa bzw sehr mehr",
            "viele vielen keine kein man wer hier dabei dazu darauf daher ohne gegen unter seit",
            "während allem allen aller anderen andere immer nun jetzt beim vom ins ans selbst",
            "wurden gibt geht",
            "еще ещё очень тоже можно нужно может можете мне меня себя свой свои своих сам сама",
            "самый самых этого этой этом эти всего всех тем том чем там тут потом затем после",
            "через будет быть вас нам нас них него нее ней ему ей",
            "так также те то только у уже что чтобы это эта этот я",
        )
    ).split()
)

_TERMINAL_RE = re.compile(r"[.!?…。！？।؟][\"'”’»)\]」』）]*$")
_NO_SPACE_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
_NO_SPACE_RE = re.compile(f"[{_NO_SPACE_CHARS}]")
_NO_SPACE_RUN_RE = re.compile(f"[{_NO_SPACE_CHARS}]+")
_KANA_RE = re.compile("[\u3040-\u30ff]")
_THAI_RE = re.compile("[\u0e00-\u0e7f]")
_JAPANESE_TERM_RE = re.compile("[\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")
_CHINESE_FUNCTION_CHARS = frozenset(
    "的了是在和有这那我你他她它们也就不都而及与或个之对为以于被把从到中上下会能要说将等但并很一"
)
_EMPHASISED_LINE_RE = re.compile(r"(\*\*|__|\*|_)[^*_].*\1")
_FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_SKIP_LINE_RE = re.compile(
    r"^\s{0,3}(#{1,6}(\s|$)|\||<|!\[|([-*_]\s*){3,}$|\[[^\]]*\]:\s)"  # headings, tables, html…
)
_LIST_PREFIX_RE = re.compile(r"^\s*(>\s*)*([-*+]|\d{1,3}[.)])?\s+")
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS_RE = re.compile(r"(\*\*|__|\*|`)")
_BLOCK_START_RE = re.compile(r"^(#|>|[-+*]\s|\d+[.)]\s|=+\s*$|-+\s*$|\||<)")
_TRAILING_RE = re.compile(r"[\s,;:–—\-|/&]+$")
_DETERMINERS = frozenset(
    ("the", "a", "an", "this", "that", "these", "those", "its", "their", "our", "his", "her")
)
_WHY_RE = re.compile(
    r"\b(because|so that|important|matters?|crucial|essential|the reason|in order to)\b", re.I
)
_NUMBER_WORDS = frozenset(
    " ".join(
        (
            "two three four five six seven eight nine ten eleven twelve twenty hundred thousand",
            "million billion second third fourth",
        )
    ).split()
)
_PREPOSITIONS = frozenset(
    " ".join(
        (
            "across along alongside amid amidst behind beside besides beyond despite inside",
            "onto outside past toward towards underneath unlike via",
        )
    ).split()
)
_HOW_RE = re.compile(r"\b(works?|worked|allows?|lets|enables?|by \w+ing|through)\b", re.I)


@dataclass(frozen=True)
class Draft:
    title: str
    slug: str
    meta_description: str
    markdown: str
    outline: list[str]
    faq: list[tuple[str, str]]
    takeaways: list[str]


@dataclass(frozen=True)
class _Sentence:
    index: int
    paragraph: int
    text: str  # verbatim markdown from the source
    plain: str  # the same without inline markdown
    words: int  # as the length check counts: each character of a script without spaces is one
    reading: float  # as the readability check counts (seo._measure): two such characters one word
    terms: tuple[str, ...]


@dataclass(frozen=True)
class _Term:
    key: str  # case-folded
    display: str  # most natural surface form in the text


def write_offline(
    *, title: str, text: str, keywords: list[str], language: str, length: int
) -> Draft:
    """Build a draft of about `length` words from the article's key sentences; never invents."""
    title = _plain(unicodedata.normalize("NFC", title)).strip()
    sentences = _sentences(unicodedata.normalize("NFC", text), language)
    keywords = [k.strip() for k in keywords if k.strip()]
    frequencies = Counter(term for s in sentences for term in s.terms)
    terms = _ranked_terms(sentences, title)
    keyword = keywords[0] if keywords else _salient(sentences, terms, title)
    scores = _scores(sentences, frequencies, keyword, keywords[1:])
    takeaways_heading, faq_heading, question, closing_heading, general = _FRAMING.get(
        language.lower().split("-")[0], _FRAMING["en"]
    )
    uses = {s.index: count_keyword(s.plain, keyword) if keyword else 0 for s in sentences}
    available = sum(s.words for s in sentences)
    # A keyword in most sentences: the framing (FAQ, takeaways) is drawn from the others.
    dense = 100 * sum(uses.values()) > (DENSITY_MAX_PERCENT - 0.5) * max(available, 1)

    intro = _intro(sentences, scores, keyword)
    rest = [s for s in sentences if s not in intro and not _tag_list(s, uses[s.index])]
    phrases_first = sorted(terms[:10], key=lambda t: " " not in t.key)
    named = [t.display.removesuffix("’s").removesuffix("'s") for t in phrases_first]
    usages: dict[str, tuple[str, bool, bool]] = {}

    def usage(subject: str) -> tuple[str, bool, bool]:
        if subject not in usages:  # a regex over every sentence: once per subject
            usages[subject] = _usage(subject, sentences)
        return usages[subject]

    subjects = [keyword, *keywords, *(t for t in named if usage(t)[1])]
    if dense:
        subjects = [t for t in subjects[1:] if not _overlaps(t, keyword)]
    english = language.lower().startswith("en") or language.lower() == "und"

    def ask(subject: str, answer: _Sentence) -> str:
        surface = usage(subject)[0]
        if not english:  # "the" is English: "a equipe" is Portuguese "the team"
            return question.format(surface.removeprefix("the "))
        return _english_question(surface, answer)

    # Fewer of the ten main terms a reader would ask about: the next ones (lazily: a regex each).
    further = (t.display for t in terms[10:30] if usage(t.display)[1])
    main = itertools.chain(subjects, (t for t in further if not (dense and _overlaps(t, keyword))))
    # Key terms no reader asks about by name ("Chinese", "the best"): one answer on them, under
    # the general question, when the others leave the FAQ short.
    unnamed = [t for t in named if usage(t)[2] and not (dense and _overlaps(t, keyword))]
    fallback = (unnamed, general)
    wanted = 2 if length < 700 else 3
    faq = _faq(rest, scores, main, ask, wanted, uses if dense else None, fallback=fallback)
    n_takeaways = min(5, max(2 if length < 400 else 3, round(length / 300)))
    sections = _sections(rest, scores, keyword, length, intro, faq, n_takeaways)
    joiner = "、" if language.lower().startswith(("ja", "zh")) else ", "
    taken = {a.index for _, a in faq}
    tables: list[tuple[str, str]] = []  # (heading, markdown) of the source's tables, when short
    closing: list[_Sentence] = []
    short_first = False  # framing prefers short sentences (a source of long ones)
    withheld: set[int] = set()  # sentences the takeaways do not say again (see below)

    counted: dict[tuple[int, ...], _Counts] = {}
    headed: dict[tuple[tuple[int, ...], ...], list[str]] = {}

    def assemble(sections: list[list[_Sentence]]) -> tuple[str, list[str], list[_Sentence]]:
        key = tuple(tuple(s.index for s in chosen) for chosen in sections)
        if key not in headed:  # the framing changes more often than the sections
            headed[key] = _headings(sections, keyword, keywords[1:], joiner, language, counted)
        headings = headed[key]
        takeaways = _takeaways(
            sections, scores, n_takeaways, taken | withheld, uses, short_first, dense
        )
        parts = [OFFLINE_LABEL]
        if intro:
            opening = " ".join(s.text for s in intro)
            if keyword and not contains_keyword(opening, keyword):
                opening = f"**{_capitalise(keyword)}:** {opening}"
            parts.append(_escape_block_start(opening))
        for heading, chosen in zip(headings, sections, strict=True):
            parts += [f"## {heading}", *_paragraphs(chosen)]
        outline = list(headings)
        for heading, table in tables:
            parts += [f"## {heading}", table]
            outline.append(heading)
        if takeaways:
            parts += [f"## {takeaways_heading}", "\n".join(f"- {s.text}" for s in takeaways)]
            outline.append(takeaways_heading)
        if faq:
            parts.append(f"## {faq_heading}")
            for q, a in faq:
                parts += [f"### {q}", _escape_block_start(a.text)]
            outline.append(faq_heading)
        if closing:
            parts += [f"## {closing_heading}", *_paragraphs(closing)]
            outline.append(closing_heading)
        return "\n\n".join(parts) + "\n", outline, takeaways

    spare = [s for s in rest if s.index not in taken and all(s not in c for c in sections)]

    def repair(built: _Built, measured: BodyMeasures | None = None) -> tuple[_Built, BodyMeasures]:
        """Measure as the SEO report does; move sentences on an estimate; again. Returns the
        draft and its measures."""
        for _ in range(4):
            measured = measured or measure_body(built[0], keyword, language)
            chosen = [s for c in sections for s in c]
            base = (
                measured.words - sum(s.words for s in chosen),
                measured.keyword_uses - sum(uses[s.index] for s in chosen),
                measured.sentences - len(chosen),
                measured.reading_words - sum(s.reading for s in chosen),
            )
            changed = False
            # The moves depend only on the sentences chosen: once a state comes back, the
            # moves go round the same cycle ("too long: drop the longest", "too short: add
            # the best"), so the state the 60 steps would end on is taken at once.
            seen: dict[tuple[tuple[int, ...], ...], int] = {}  # by the sentences' indices
            states: list[_State] = []
            for step in range(_REPAIR_STEPS):
                key = tuple(tuple(s.index for s in c) for c in [*sections, spare])
                if key in seen:
                    last = _cycle_end(seen[key], step, _REPAIR_STEPS)
                    for chosen_now, kept in zip(sections, states[last][0], strict=True):
                        chosen_now[:] = kept
                    spare[:] = states[last][1]
                    break
                seen[key] = step
                states.append((tuple(tuple(c) for c in sections), tuple(spare)))
                chosen = [s for c in sections for s in c]
                estimate = BodyMeasures(
                    words=base[0] + sum(s.words for s in chosen),
                    keyword_uses=base[1] + sum(uses[s.index] for s in chosen),
                    sentences=base[2] + len(chosen),
                    reading_words=base[3] + sum(s.reading for s in chosen),
                )
                if not _repair(sections, spare, scores, estimate, uses, length):
                    break
                changed = True
            if not changed:
                return built, measured
            built, measured = assemble(sections), None
        return built, measure_body(built[0], keyword, language)

    (markdown, outline, takeaways), measured = repair(assemble(sections))
    while takeaways and measured.words > (1 + LENGTH_TOLERANCE) * length:
        # Too long with the fewest sentences the sections take (a short source of long
        # sentences, as Japanese ones are in words): fewer takeaways say them again.
        n_takeaways = len(takeaways) - 1
        markdown, outline, takeaways = assemble(sections)
        measured = measure_body(markdown, keyword, language)
    # A source too short (or of sentences too long) to fill the length from its sentences: the
    # post gets more of the framing a reader expects, all of it drawn from the source: its tables,
    # five takeaways, four questions and a closing statement, until the length is reached.
    # Sentences too long on average: the same, with short ones as takeaways and answers, and a
    # closing only of sentences shorter than the average (a longer one would raise it).
    enough = (1 - 0.8 * LENGTH_TOLERANCE) * length
    room = (1 + 0.8 * LENGTH_TOLERANCE) * length - 40

    def wanting(measured: BodyMeasures) -> bool:
        hard = measured.average_sentence_words > MAX_AVERAGE_SENTENCE_WORDS - 0.5
        return measured.words < enough or (hard and measured.words < room)

    steps = ["tables", "takeaways", "faq", "closing", "closing+"]
    label_words, exact = count_words(OFFLINE_LABEL), True
    unframed = (
        [list(c) for c in sections],
        list(spare),
        (faq, taken, tables, closing, n_takeaways, short_first, dense),
        (markdown, outline, takeaways, measured),
    )
    while wanting(measured) and steps:
        step = steps.pop(0)
        short_first = measured.average_sentence_words > MAX_AVERAGE_SENTENCE_WORDS - 3
        dense = dense or measured.density > DENSITY_MAX_PERCENT - 0.5
        if step == "tables" and measured.words < enough:
            tables = _tables(text, room + 40 - measured.words)
            if not tables:
                continue
        elif step == "takeaways" and n_takeaways < 5:
            n_takeaways = 5
        elif step == "faq" and len(faq) < 4:
            more = (t.display for t in terms[10:30] if usage(t.display)[1])  # lazily: a regex each
            chained = itertools.chain(subjects, more)
            candidates = (t for t in chained if not (dense and _overlaps(t, keyword)))
            faq = _faq(
                rest, scores, candidates, ask, 4, uses if dense else None, short_first, fallback
            )
            taken = {a.index for _, a in faq}
        elif step in ("closing", "closing+"):
            wanted = 1 if step == "closing" else 2  # a second: keyword-free ones first
            closing = _closing(
                sentences,
                intro,
                takeaways,
                faq,
                scores,
                uses,
                dense or wanted > 1,
                short_first,
                wanted,
            )
            if measured.words >= enough:  # long enough: a closing only if it lowers the average
                closing = [s for s in closing if s.reading < measured.average_sentence_words]
        else:
            continue
        markdown, outline, takeaways = assemble(sections)
        rough = count_words(markdown) - label_words  # markdown syntax is no word
        if rough < enough - 50 and steps:  # far from the length still: measure later
            measured = BodyMeasures(
                rough, measured.keyword_uses, measured.sentences, measured.reading_words
            )
            exact = False
        else:
            measured, exact = measure_body(markdown, keyword, language), True
    if not exact:
        measured = measure_body(markdown, keyword, language)
    hard = measured.average_sentence_words > MAX_AVERAGE_SENTENCE_WORDS - 0.5
    spare[:] = [s for s in spare if s.index not in taken]
    retry = closing or hard or measured.density > DENSITY_MAX_PERCENT - 0.1
    if retry and (spare or measured.words >= enough):
        # The framing made room (or made it worse): the sections are repaired again around it.
        before = ([list(c) for c in sections], list(spare), markdown, outline, takeaways)
        (markdown, outline, takeaways), repaired = repair((markdown, outline, takeaways), measured)
        if _misses(repaired, length) < _misses(measured, length):
            measured = repaired
        else:  # no better: the draft as it was
            sections[:], spare[:], markdown, outline, takeaways = before
    if _misses(measured, length) > _misses(unframed[3][3], length):
        # The framing made the draft miss a limit it kept without it (a draft long enough for
        # the tolerance, framed with long sentences): the draft as it was before.
        sections[:], spare[:] = unframed[0], unframed[1]
        faq, taken, tables, closing, n_takeaways, short_first, dense = unframed[2]
        markdown, outline, takeaways, measured = unframed[3]
    if keyword and measured.density > DENSITY_MAX_PERCENT:
        # Too dense still: the takeaways and the closing say again no keyword sentence of the
        # sections (others take their place, or none), when that brings the density within
        # its limits without making the post too short.
        again = {s.index for c in sections for s in c if uses[s.index]}
        if again & {s.index for s in [*takeaways, *closing]}:
            before_framing = (markdown, outline, takeaways, closing)
            withheld, closing = again, [s for s in closing if s.index not in again]
            markdown, outline, takeaways = assemble(sections)
            lighter = measure_body(markdown, keyword, language)
            if lighter.density >= DENSITY_MIN_PERCENT and (
                _misses(lighter, length) < _misses(measured, length)
            ):
                measured = lighter
            else:
                withheld = set()
                markdown, outline, takeaways, closing = before_framing
    if keyword and measured.density < DENSITY_MIN_PERCENT + 0.1:
        # A keyword the article seldom uses: the closing headings name it too.
        takeaways_heading = f"{takeaways_heading}: {keyword}"
        faq_heading = f"{faq_heading}: {keyword}"
        markdown, outline, takeaways = assemble(sections)

    final_title = _title(title or (sentences[0].plain if sentences else ""), keyword, terms)
    slug = slugify(final_title)
    keyword_slug = ascii_slug(keyword)
    if keyword_slug and f"-{keyword_slug}-" not in f"-{slug}-":
        slug = slugify(f"{keyword} {final_title}")
    return Draft(
        title=final_title,
        slug=slug,
        meta_description=_meta(sentences, keyword),
        markdown=markdown,
        outline=outline,
        faq=[(q, a.plain) for q, a in faq],
        takeaways=[s.plain for s in takeaways],
    )


def _sections(
    rest: list[_Sentence],
    scores: dict[int, float],
    keyword: str,
    length: int,
    intro: list[_Sentence],
    faq: list[tuple[str, _Sentence]],
    n_takeaways: int,
) -> list[list[_Sentence]]:
    """3-6 sections of the remaining sentences sharing what the word budget leaves."""
    wanted = max(MIN_SECTIONS, round(length / WORDS_PER_SECTION))
    # A short source gets fewer, fuller sections: about three sentences each, at least three.
    n = min(MAX_SECTIONS, wanted, max(MIN_SECTIONS, len(rest) // 3), len(rest))
    if n == 0:
        return []
    average = sum(s.words for s in rest) / len(rest)
    fixed = (
        sum(s.words for s in intro)
        + sum(count_words(q) + a.words for q, a in faq)
        + n_takeaways * average
        + 5 * (n + 2)  # headings
    )
    budget = max(length - fixed, 0.0) / n
    # Keyword allowance: about 2% of the words, well inside the 0.5-2.5% density window.
    planned = min(length, sum(s.words for s in [*intro, *rest]))
    framing = [s.plain for s in intro] + [f"{q} {a.plain}" for q, a in faq] + [keyword]
    allowance = int(0.02 * planned) - sum(count_keyword(t, keyword) for t in framing)
    sections: list[list[_Sentence]] = []
    for number, region in enumerate(_regions(rest, n)):
        share = max(0, allowance) // (n - number)
        sections.append(_select(region, scores, budget, keyword, share))
        allowance -= sum(count_keyword(s.plain, keyword) for s in sections[-1])
    return sections


def _repair(
    sections: list[list[_Sentence]],
    spare: list[_Sentence],
    scores: dict[int, float],
    measures: BodyMeasures,
    keyword_uses: dict[int, int],
    length: int,
) -> bool:
    """One change that brings the draft closer to the SEO limits it misses (keyword density,
    average sentence length, length), made in place; False when there is nothing to do."""
    low, high = (1 - 0.8 * LENGTH_TOLERANCE) * length, (1 + 0.8 * LENGTH_TOLERANCE) * length
    words = measures.words

    def uses(s: _Sentence) -> int:
        return keyword_uses[s.index]

    def place(s: _Sentence) -> None:
        spare.remove(s)
        home = min(sections, key=lambda c: min(abs(x.index - s.index) for x in c) if c else 1e9)
        home.append(s)
        home.sort(key=lambda x: x.index)

    def drop(s: _Sentence) -> None:
        for chosen in sections:
            if s in chosen:
                chosen.remove(s)
        spare.append(s)

    removable = [s for c in sections if len(c) > 1 for s in c]
    too_dense = measures.density > DENSITY_MAX_PERCENT - 0.2
    too_long = measures.average_sentence_words > MAX_AVERAGE_SENTENCE_WORDS - 1
    if too_dense:
        heavy = [s for s in removable if uses(s)]
        if heavy:
            worst = max(heavy, key=lambda s: (uses(s), -scores[s.index], s.index))
            light = [s for s in spare if not uses(s)]
            if words - worst.words >= low or light:  # never trade length for density
                if words - worst.words < low:
                    place(min(light, key=lambda s: (abs(s.words - worst.words), s.index)))
                drop(worst)
                return True
        light = [s for s in _best(spare, scores) if not uses(s) and s.reading <= 25]
        if light and words + light[0].words <= high:
            place(light[0])
            return True
    if any(keyword_uses.values()) and measures.density < DENSITY_MIN_PERCENT + 0.1:
        bearing = [s for s in _best(spare, scores) if uses(s)]
        if bearing:
            place(bearing[0])
            return True
    if too_long:
        longest = max(removable, key=lambda s: (s.reading, s.index), default=None)
        short = [
            s for s in _best(spare, scores) if s.reading <= 20 and (not too_dense or not uses(s))
        ]
        if short and words + short[0].words <= high:
            place(short[0])
            return True
        long_enough = longest is not None and longest.reading > MAX_AVERAGE_SENTENCE_WORDS
        if longest is not None and long_enough and (words - longest.words >= low or not short):
            drop(longest)
            return True
    if words < low:
        fitting = [s for s in _best(spare, scores) if not (too_dense and uses(s))]
        fitting = [s for s in fitting if s.reading <= MAX_AVERAGE_SENTENCE_WORDS or not too_long]
        if fitting:
            place(fitting[0])
            return True
    if words > high and removable:
        drop(min(removable, key=lambda s: (scores[s.index], -s.index)))
        return True
    if words > high:  # a sentence a section: its longest is said by a shorter one instead
        longest = max((s for c in sections for s in c), key=lambda s: (s.words, s.index))
        shorter = [
            s
            for s in _best(spare, scores)
            if s.words < longest.words
            and words - longest.words + s.words >= low
            and not (too_dense and uses(s) > uses(longest))
        ]
        if shorter:  # in the same section: none is left without a sentence
            home = next(c for c in sections if longest in c)
            spare.remove(shorter[0])
            home[home.index(longest)] = shorter[0]
            home.sort(key=lambda x: x.index)
            spare.append(longest)
            return True
    return False


_REPAIR_STEPS = 60  # moves per measurement of the draft
_State = tuple[tuple[tuple[_Sentence, ...], ...], tuple[_Sentence, ...]]  # sections, spare


def _cycle_end(first: int, again: int, steps: int) -> int:
    """The step whose state a run of `steps` moves ends on, when the state of step `first`
    comes back at step `again`: from there on the states repeat with period again - first."""
    return first + (steps - first) % (again - first)


def _misses(measures: BodyMeasures, length: int) -> int:
    """How many of the density, readability and length limits the body misses."""
    return (
        (measures.keyword_uses > 0 and measures.density > DENSITY_MAX_PERCENT)
        + (measures.average_sentence_words > MAX_AVERAGE_SENTENCE_WORDS)
        + (abs(measures.words - length) > LENGTH_TOLERANCE * length)
    )


def _plain(markdown: str) -> str:
    return _EMPHASIS_RE.sub("", _LINK_RE.sub(r"\1", markdown))


def _capitalise(text: str) -> str:
    """Upper-case the first letter unless the first word is already styled ("iPhone", "ePA")."""
    first = text.split(" ", 1)[0]
    return text if first != first.lower() else text[:1].upper() + text[1:]


def _escape_block_start(text: str) -> str:
    """Keep a source sentence a paragraph even when it starts like markdown block syntax."""
    return "\\" + text if _BLOCK_START_RE.match(text) else text


def _term_pairs(text: str) -> list[tuple[str, str]]:
    """Content terms of a text as (case-folded key, surface form), in order."""
    pairs: list[tuple[str, str]] = []
    position = 0
    for run in _NO_SPACE_RUN_RE.finditer(text):
        pairs += _word_pairs(text[position : run.start()])
        pairs += [(term, term) for term in _no_space_terms(run.group())]
        position = run.end()
    return pairs + _word_pairs(text[position:])


def _word_pairs(text: str) -> list[tuple[str, str]]:
    return [(w.casefold(), w) for w in words(text) if _is_content(w.casefold())]


def _no_space_terms(run: str) -> list[str]:
    """Japanese: kanji and katakana stretches (kana inflections dropped); Chinese: bigrams
    without function characters; Thai cannot be segmented without a dictionary."""
    if _KANA_RE.search(run):
        return _JAPANESE_TERM_RE.findall(run)
    if _THAI_RE.search(run):
        return []
    bigrams = (run[i : i + 2] for i in range(len(run) - 1))
    return [b for b in bigrams if not any(ch in _CHINESE_FUNCTION_CHARS for ch in b)]


def _tokens(text: str) -> list[str]:
    return [key for key, _ in _term_pairs(text)]


def _sentences(text: str, language: str) -> list[_Sentence]:
    """Usable sentences of a markdown article, skipping code, tables, headings and fragments."""
    paragraphs: list[list[tuple[str, bool]]] = [[]]  # lines, and whether each one continues
    in_fence = ""
    open_end = False  # the last line of text stopped inside a sentence
    for line in text.splitlines():
        fence = _FENCE_RE.match(line)
        if in_fence:
            if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence):
                in_fence = ""
            continue
        if fence:
            in_fence, open_end = fence.group(1), False
            paragraphs.append([])
            continue
        if line.lstrip().startswith("|"):  # a layout table can hold the whole article
            cells = [c.strip() for c in line.strip().strip("|").split("|") if count_words(c) >= 40]
            paragraphs += [[(cell, False)] for cell in cells]
            paragraphs.append([])
            open_end = False
            continue
        if not line.strip() or _SKIP_LINE_RE.match(line):
            paragraphs.append([])
            open_end = open_end and not line.strip()  # a heading ends what came before
            continue
        stripped = _LIST_PREFIX_RE.sub("", line, count=1).strip()
        # "… provide publishers with an" / "effective way to …": a break inside a sentence (an
        # image or an ad taken out between); the rest of it up to its stop is no sentence.
        continues = open_end and stripped == line.strip() and stripped[:1].islower()
        paragraphs[-1].append((stripped, continues))
        # A line in bold or italics as a whole ("**About my6sense**") is a heading of its own.
        heading = _EMPHASISED_LINE_RE.fullmatch(stripped) is not None
        open_end = not heading and not _TERMINAL_RE.search(_plain(stripped).rstrip())

    raw: list[tuple[int, str]] = []
    for number, lines in enumerate(p for p in paragraphs if p):
        for line, continues in lines:
            found = split_sentences(line, language)
            raw.extend((number, s) for s in found[1 if continues else 0 :])
    seen: set[str] = set()
    candidates: list[tuple[int, str]] = []
    for p, s in raw:  # a sentence repeated in the source (a recurring interview question) once
        key = " ".join(s.split()).casefold()
        if _usable(s) and key not in seen:
            seen.add(key)
            candidates.append((p, s))
    keys = [" ".join(s.split()).casefold() for _, s in candidates]
    candidates = [  # a short line that repeats part of a longer sentence adds nothing
        pair
        for pair, key in zip(candidates, keys, strict=True)
        if len(key) > 120 or not any(key in other and key != other for other in keys)
    ]
    prose = [(p, s) for p, s in candidates if _TERMINAL_RE.search(s)]
    chosen = prose if len(prose) >= 6 else candidates
    usable: list[_Sentence] = []
    for i, (p, s) in enumerate(chosen):
        plain = _plain(s)
        n = count_words(plain)
        reading = n - 0.5 * len(_NO_SPACE_RE.findall(plain)) if _NO_SPACE_RE.search(plain) else n
        usable.append(
            _Sentence(i, p, _balanced_emphasis(s), plain, n, reading, tuple(_tokens(plain)))
        )
    return usable


_UNESCAPED_STAR_RE = re.compile(r"(?<![\\*])\*(?!\*)")


def _balanced_emphasis(text: str) -> str:
    """A sentence cut out of an emphasised run ("**What is new? New tasks!**" split in two)
    loses its unpaired marker, which would show as a literal "**" or run on into the next."""
    if text.count("**") % 2:
        if text.startswith("**"):
            text = text[2:]
        elif text.endswith("**"):
            text = text[:-2]
    if len(_UNESCAPED_STAR_RE.findall(text)) % 2:
        if _UNESCAPED_STAR_RE.match(text):
            text = text[1:]
        elif text.endswith("*") and not text.endswith("\\*"):
            text = text[:-1]
    return text


def _usable(sentence: str) -> bool:
    """Five words or more (ten where each character of a script without spaces is one), and
    seventy words of reading at most, two such characters making one as the SEO report counts
    them: a Japanese sentence of 100 characters is a usual one."""
    plain = _plain(sentence)
    n = count_words(plain)
    no_space = len(_NO_SPACE_RE.findall(plain))
    minimum = 10 if no_space else 5
    return minimum <= n and n - 0.5 * no_space <= 70 and any(ch.isalpha() for ch in plain)


def _term_counts(texts: Iterable[str]) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Counts of content words and of two-word phrases (case-folded), with their surface forms."""
    counts: Counter[str] = Counter()
    surfaces: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(key: str, surface: str) -> None:
        counts[key] += 1
        surfaces[key][surface] += 1

    for text in texts:
        previous: str | None = None
        for token in text.split():
            # Most tokens are plain ASCII words: skip the regex (same result, a third the time).
            found = [token] if token.isascii() and token.isalpha() else words(token)
            if _NO_SPACE_RE.search(token):  # such a character is always a word of its own
                for key, surface in _term_pairs(token):
                    add(key, surface)
                previous = None
                continue
            word = found[0] if len(found) == 1 else ""
            if not _is_content(word.casefold()):
                previous = None
                continue
            add(word.casefold(), word)
            if previous is not None and token.startswith(word):
                add(f"{previous} {word}".casefold(), f"{previous} {word}")
            previous = word if token.endswith(word) else None
    return counts, surfaces


def _ranked_terms(sentences: list[_Sentence], title: str) -> list[_Term]:
    """Salient words and phrases, most frequent first; a phrase replaces its word when common."""
    counts, surfaces = _term_counts([title, title, *(s.plain for s in sentences)])
    best_pair: dict[str, tuple[int, str]] = {}
    for key, count in counts.items():
        if " " in key and count >= 3:
            for part in key.split():
                if count > best_pair.get(part, (0, ""))[0]:
                    best_pair[part] = (count, key)
    ranked: list[_Term] = []
    seen: set[str] = set()
    unigrams = [(k, c) for k, c in counts.items() if " " not in k]
    for key, count in sorted(unigrams, key=lambda kc: -kc[1]):
        pair_count, pair = best_pair.get(key, (0, ""))
        chosen = pair if pair_count >= 0.4 * count else key
        if chosen not in seen:
            seen.add(chosen)
            ranked.append(_Term(chosen, _display(surfaces[chosen])))
    return ranked


def _salient(sentences: list[_Sentence], terms: list[_Term], title: str) -> str:
    """The main keyword when none is given: the title's most used term (phrases count double)."""
    counts, surfaces = _term_counts(s.plain for s in sentences)
    title_terms, _ = _term_counts([title])
    order = list(title_terms)

    def weight(key: str) -> tuple[int, float, int]:
        # Ties go to the capitalised form: German nouns, English proper names.
        forms = surfaces[key]
        capitalised = sum(n for form, n in forms.items() if form[:1].isupper()) / forms.total()
        return (counts[key] * (2 if " " in key else 1), capitalised, -order.index(key))

    candidates = [k for k in order if counts[k] >= 2]
    if candidates:
        return _display(surfaces[max(candidates, key=weight)])
    return terms[0].display if terms else ""


def _is_content(folded: str) -> bool:
    if len(folded) < 3 or folded.isdigit():
        return False
    return folded.replace("’", "'") not in _STOPWORDS


def _display(forms: Counter[str]) -> str:
    lower = [f for f in forms if f == f.lower()]
    return lower[0] if lower else forms.most_common(1)[0][0]


def _balanced(text: str) -> bool:
    """False for quotation fragments, which read badly out of context."""
    return (
        text.count("“") == text.count("”")
        and text.count("«") == text.count("»")
        and text.count('"') % 2 == 0
    )


def _tag_list(s: _Sentence, keyword_uses: int) -> bool:
    """A list of tags or search phrases ("stock car brasil, stock car interlagos, …"): keyword
    stuffing, not a statement."""
    return keyword_uses >= 3 and s.plain.count(",") >= keyword_uses - 1


def _is_question(s: _Sentence) -> bool:
    """Ends with a question mark, or in Japanese with the particle か and a full stop
    ("…のでしょうか。"), as questions there often are."""
    plain = s.plain.rstrip("\"'”’»)」』")
    return plain.endswith(("?", "？", "؟")) or (
        plain.endswith("か。") and bool(_KANA_RE.search(plain))
    )


def _scores(
    sentences: list[_Sentence], frequencies: Counter[str], keyword: str, others: list[str]
) -> dict[int, float]:
    """Frequency score of each sentence, raised by keywords and the lead, lowered by length."""
    top = max(frequencies.values(), default=1)
    scores: dict[int, float] = {}
    for s in sentences:
        unique = sorted(set(s.terms))
        score = sum(frequencies[t] for t in unique) / top / math.sqrt(len(unique)) if unique else 0
        uses = count_keyword(s.plain, keyword) if keyword else 0
        if uses >= 3:  # a list of tags ("stock car brasil, stock car interlagos, …")
            score *= 0.2
        elif uses:
            score += 0.5
        score += 0.3 * sum(contains_keyword(s.plain, k) for k in others)
        score += 0.3 * (1 - s.index / len(sentences))
        if s.reading < 8:
            score *= 0.6
        elif s.reading > 25:
            score *= 25 / s.reading
        if not _balanced(s.text):
            score *= 0.5
        scores[s.index] = score
    return scores


def _best(sentences: Iterable[_Sentence], scores: dict[int, float]) -> list[_Sentence]:
    return sorted(sentences, key=lambda s: (-scores[s.index], s.index))


def _intro(sentences: list[_Sentence], scores: dict[int, float], keyword: str) -> list[_Sentence]:
    """The article's first keyword sentence when it comes early, else its best one."""
    if not sentences:
        return []
    with_keyword = [
        s
        for s in sentences
        if keyword and 0 < count_keyword(s.plain, keyword) < 3 and _balanced(s.text)
    ]
    early = [s for s in with_keyword if s.index <= 0.3 * len(sentences) and not _is_question(s)]
    if early:
        return early[:1]
    if with_keyword:
        return _best(with_keyword, scores)[:1]
    lead = sentences[:2]
    return lead if sum(s.words for s in lead) <= 60 else lead[:1]


def _faq(
    sentences: list[_Sentence],
    scores: dict[int, float],
    subjects: Iterable[str],
    ask: Callable[[str, _Sentence], str],
    wanted: int,
    keyword_uses: dict[int, int] | None = None,
    short_first: bool = False,
    fallback: tuple[Iterable[str], str] = ((), ""),
) -> list[tuple[str, _Sentence]]:
    """Questions the article asks and answers in the same paragraph, then ones about key terms.

    With `keyword_uses` (a keyword in most sentences) answers without the keyword come first;
    with `short_first`, answers of 20 words or fewer. Still short of `wanted`: one answer about
    a `fallback` term (a key term no reader would ask about by name) under its general question."""
    faq: list[tuple[str, _Sentence]] = []
    used: set[int] = set()
    for s, following in itertools.pairwise(sentences):
        if len(faq) == wanted:
            return faq
        answered = following.paragraph == s.paragraph and not _is_question(following)
        if _is_question(s) and answered and s.words >= 6 and _balanced(s.text + following.text):
            faq.append((s.plain, following))
            used.update((s.index, following.index))
    asked: list[str] = []

    def answer_on(subject: str) -> _Sentence | None:
        answers = [
            s
            for s in sentences
            if s.index not in used
            and contains_keyword(s.plain, subject)
            and not _is_question(s)
            and _balanced(s.text)
        ]
        return min(
            answers,
            key=lambda s: (
                bool(keyword_uses and keyword_uses[s.index]),
                short_first and s.reading > 20,
                *_answer_rank(s, subject, scores),
            ),
            default=None,
        )

    for subject in subjects:
        if len(faq) == wanted:
            break
        if not subject or any(_overlaps(a, subject) for a in asked):
            continue
        if answer := answer_on(subject):
            faq.append((ask(subject, answer), answer))
            used.add(answer.index)
            asked.append(subject)
    terms, general = fallback
    for subject in terms if len(faq) < wanted else ():
        if (
            subject
            and not any(_overlaps(a, subject) for a in asked)
            and (answer := answer_on(subject))
        ):
            faq.append((general, answer))
            break
    return faq


def _spans(subject: str, text: str) -> list[tuple[int, int]]:
    """Where the subject stands in the text as whole words, ignoring case: a plain search on the
    lower-cased text (a regex compiled per subject cost more than the search)."""
    low, needle = text.lower(), subject.lower()
    if _NO_SPACE_RE.search(subject):  # no word boundary in such a script: any occurrence
        return [m.span() for m in re.finditer(re.escape(subject), text, re.IGNORECASE)]
    if len(low) != len(text) or len(needle) != len(subject):  # "İ": lengths change
        pattern = re.compile(rf"(?<!\w){re.escape(subject)}(?!\w)", re.IGNORECASE)
        return [match.span() for match in pattern.finditer(text)]
    spans: list[tuple[int, int]] = []
    start = 0
    while (at := low.find(needle, start)) >= 0:
        end = at + len(needle)
        before, after = low[at - 1 : at], low[end : end + 1]
        if not (before and (before.isalnum() or before == "_")) and not (
            after and (after.isalnum() or after == "_")
        ):
            spans.append((at, end))
            start = end
        else:
            start = at + 1
    return spans


_NEXT_WORD_RE = re.compile(r"[ \t]+([^\W\d_]+)")


def _usage(subject: str, sentences: list[_Sentence]) -> tuple[str, bool, bool]:
    """The subject's usual written form ("Volkswagen", not "volkswagen"; "the ID. Buzz" or "the
    car" when the article names it with an article) and whether it is used as a noun a reader
    would ask about: named or after an article, and standing as the head of its phrase in a
    third of its uses or more, not a word of a longer name ("Interior" of "Interior Minister",
    "York" of "New York") or a modifier of the next word ("Chinese goods", "the best deals"),
    and whether it is such a part of a noun phrase (named or after an article still)."""
    if not subject:
        return subject, False, False
    forms: Counter[str] = Counter()
    determined = definite = heads = bare = unbroken = 0
    followers: Counter[str] = Counter()  # lower-case content words after lower-case uses
    kana = 0  # uses in sentences with kana: Japanese
    for s in sentences:
        for start, end in _spans(subject, s.plain):
            before = s.plain[:start].split()
            if not before:
                continue  # sentence-initial: its capital letter says nothing
            forms[s.plain[start:end]] += 1
            kana += _KANA_RE.search(s.plain) is not None
            after = _NEXT_WORD_RE.match(s.plain, end)
            next_word = after.group(1) if after else ""
            previous = before[-1]
            # "New York": a capitalised function word just before is part of the name (a
            # capitalised content word may be a first name: "Ahmad Lawan" is asked about).
            in_name = previous[:1].isupper() and previous[-1:].isalpha()
            in_name = in_name and previous.casefold() in _STOPWORDS - _DETERMINERS
            # A capitalised content word after continues a name ("Interior Minister"); a
            # lower-case one may be a verb ("the crossing takes", "Apple unveiled") or the noun
            # the subject modifies ("the immune system", "Chinese goods"): see below.
            content = bool(next_word) and _is_content(next_word.casefold())
            capitalised = content and next_word[:1].isupper()
            lower = content and not capitalised and not s.plain[start].isupper()
            heads += not in_name and not capitalised and not lower
            bare += not in_name and not content
            unbroken += not capitalised
            if lower and not in_name:
                followers[next_word.casefold()] += 1
            determined += previous.casefold() in _DETERMINERS
            definite += previous.casefold() == "the"
    # A lower-case word before a content word heads its phrase when that word is a verb or a
    # preposition ("the crossing takes", "the kiosk beside") met once, not a noun it modifies
    # ("the immune system" again and again, "the certain combination"). A name is one of its
    # own when a use is followed by a function word or a stop ("Apple's", "Apple said",
    # "Apple."), never the case of "Chinese goods".
    heads += sum(n for word, n in followers.items() if n == 1 and _verb_like(word))
    if not forms:
        return subject, " " in subject, False
    form = forms.most_common(1)[0][0]
    named = form[:1].isupper()
    total = forms.total()
    nounish = 3 * heads >= total and (bare > 0 or not named)
    # A stretch of kanji or katakana is a noun ("商標法", "ショートカットキー"); Chinese
    # bigrams need not be words.
    japanese = _JAPANESE_TERM_RE.fullmatch(form) is not None and kana > 0
    nounish = nounish and (named or " " in form or 3 * determined >= total or japanese)
    nounish = nounish and subject.casefold() not in _STOPWORDS | _NUMBER_WORDS
    phrase = (named and unbroken > 0) or 3 * determined >= total or " " in form
    part = phrase and not nounish
    if (named and 2 * definite > forms.total()) or (not named and 3 * determined >= forms.total()):
        return f"the {form}", nounish, part  # "the car", "the Senate", "the ID. Buzz"
    return form, nounish, part


def _verb_like(word: str) -> bool:
    """An English verb of the third person or the past ("takes", "travelled"), or a preposition
    missing from the function words ("beside")."""
    return word in _PREPOSITIONS or (word.endswith(("s", "ed")) and not word.endswith("ss"))


def _english_question(subject: str, answer: _Sentence) -> str:
    """A question the answer sentence answers, in the form its content suggests."""
    bare = subject.removeprefix("the ")
    plural = _is_plural(bare, answer.plain)
    be, do = ("are", "do") if plural else ("is", "does")
    defined = re.search(rf"(?<!\w){re.escape(bare)}\s+(is|are|was|were)\s", answer.plain, re.I)
    if defined and bare[:1].islower():
        return f"What {be} {subject}?"
    if _WHY_RE.search(answer.plain):
        return f"Why {do} {subject} matter?"
    if _HOW_RE.search(answer.plain) and bare[:1].islower():
        return f"How {do} {subject} work?"
    return f"What is known about {subject}?"


def _is_plural(subject: str, text: str) -> bool:
    after = re.search(rf"(?<!\w){re.escape(subject)}\s+(\w+)", text, re.IGNORECASE)
    verb = after.group(1).casefold() if after else ""
    if verb in ("are", "were", "have", "do"):
        return True
    if verb in ("is", "was", "has", "does"):
        return False
    last = subject.split()[-1]
    return last.islower() and last.endswith("s") and not last.endswith(("ss", "us", "is"))


def _overlaps(a: str, b: str) -> bool:
    """True for "tuft cell" and "tuft cells": one contains the other, ignoring case."""
    a, b = a.casefold(), b.casefold()
    return a in b or b in a


def _shares_word(a: str, b: str) -> bool:
    """True for "local bands" and "bands play": a word of one is a word of the other."""
    return bool(set(a.casefold().split()) & set(b.casefold().split()))


def _answer_rank(
    s: _Sentence, subject: str, scores: dict[int, float]
) -> tuple[bool, bool, float, int]:
    """Prefer answers that open on their subject and do not lean on the sentence before."""
    early = contains_keyword(_opening(s.plain, 6), subject)
    return (not early, not _self_contained(s), -scores[s.index], s.index)


def _opening(plain: str, reading: float) -> str:
    """The text of a sentence up to its first `reading` words of reading, two characters of a
    script without spaces making one ("商標法違反" is 2.5 words): joining its words with spaces
    would split those characters apart, and no keyword of such a script would be found."""
    position = 0
    for word in words(plain):
        reading -= 0.5 if _NO_SPACE_RE.match(word) else 1
        if reading < 0:
            break
        position = plain.index(word, position) + len(word)
    return plain[:position]


def _self_contained(s: _Sentence) -> bool:
    """False when the sentence opens with a function word ("But", "He"): it needs context."""
    first = words(s.plain)[:1]
    return bool(first) and first[0].casefold() not in _STOPWORDS


def _regions(sentences: list[_Sentence], n: int) -> list[list[_Sentence]]:
    """Cut into n consecutive regions of similar length, at paragraph starts where possible."""
    if n <= 0:
        return []
    total = sum(s.words for s in sentences)
    cumulative = [0]
    for s in sentences:
        cumulative.append(cumulative[-1] + s.words)
    cuts: list[int] = []
    for k in range(1, n):
        target = k * total / n

        def cost(i: int, target: float = target) -> tuple[float, int]:
            starts_paragraph = sentences[i].paragraph != sentences[i - 1].paragraph
            return (abs(cumulative[i] - target) * (1 if starts_paragraph else 1.5), i)

        low = (cuts[-1] if cuts else 0) + 1
        cuts.append(min(range(low, len(sentences) - (n - k) + 1), key=cost))
    bounds = [0, *cuts, len(sentences)]
    return [sentences[a:b] for a, b in itertools.pairwise(bounds)]


def _select(
    region: list[_Sentence],
    scores: dict[int, float],
    budget: float,
    keyword: str,
    allowance: int,
) -> list[_Sentence]:
    """The region's best sentences up to its word budget, in source order.

    Keyword sentences beyond the allowance wait for a second pass, taken only when the region
    would otherwise fall well short of its budget: length matters more than density."""
    chosen: list[_Sentence] = []
    waiting: list[_Sentence] = []
    total = used = 0
    for s in _best(region, scores):
        if chosen and total >= 0.9 * budget:
            break
        uses = count_keyword(s.plain, keyword) if keyword else 0
        if uses and used + uses > allowance:
            waiting.append(s)
        elif not chosen or total + s.words <= 1.1 * budget:
            chosen.append(s)
            total += s.words
            used += uses
    for s in waiting:
        if chosen and total >= 0.75 * budget:
            break
        if not chosen or total + s.words <= 1.1 * budget:
            chosen.append(s)
            total += s.words
    return sorted(chosen, key=lambda s: s.index)


def _paragraphs(chosen: list[_Sentence]) -> list[str]:
    """Up to three neighbouring sentences per paragraph; a jump in the source starts a new one."""
    groups: list[list[_Sentence]] = []
    for s in chosen:
        group = groups[-1] if groups else []
        fits = len(group) < 3 and sum(g.words for g in group) + s.words <= 80
        # Fragments without a full stop, or a next one starting in lower case, would read as
        # one run-on sentence: they get a paragraph of their own.
        whole = (
            bool(group) and bool(_TERMINAL_RE.search(group[-1].text)) and not s.text[0].islower()
        )
        if group and fits and whole and s.paragraph - group[-1].paragraph <= 1:
            group.append(s)
        else:
            groups.append([s])
    return [_escape_block_start(" ".join(s.text for s in group)) for group in groups]


_Counts = tuple[Counter[str], dict[str, Counter[str]]]
_Built = tuple[str, list[str], list[_Sentence]]  # markdown, outline, takeaways


def _headings(
    sections: list[list[_Sentence]],
    keyword: str,
    others: list[str],
    joiner: str,
    language: str,
    counted: dict[tuple[int, ...], _Counts] | None = None,
) -> list[str]:
    """Each heading names its section's most distinctive terms; the keyword leads one of them.
    `counted` keeps each section's term counts while the repair pass moves sentences."""
    counted = {} if counted is None else counted
    stats = []
    for chosen in sections:
        indices = tuple(s.index for s in chosen)
        if indices not in counted:
            counted[indices] = _term_counts(s.plain for s in chosen)
        stats.append(counted[indices])
    spread = Counter(key for counts, _ in stats for key in counts)
    texts = [" ".join(s.plain for s in chosen) for chosen in sections]
    home = 0
    if keyword and texts:
        uses = [count_keyword(t, keyword) for t in texts]
        home = uses.index(max(uses))
    used: list[str] = [keyword] if keyword else []
    english = language.lower().startswith("en")
    headings: list[str] = []
    for number, ((counts, surfaces), text) in enumerate(zip(stats, texts, strict=True)):
        picked = [keyword] if keyword and number == home else []
        picked += [k for k in others if k not in used and contains_keyword(text, k)][:1]
        order = {key: i for i, key in enumerate(counts)}
        repeated = any(c >= 2 for c in counts.values())

        def weight(
            key: str, counts: Counter[str] = counts, order: dict[str, int] = order
        ) -> tuple[float, int]:
            rarity = 1 + math.log(len(sections) / spread[key])
            return (-counts[key] * rarity * (1.5 if " " in key else 1), order[key])

        for key in sorted(counts, key=weight):
            if len(picked) >= 3:
                break
            term = _display(surfaces[key])
            if repeated and counts[key] < 2:
                continue
            if english and " " not in key and key.endswith(("ed", "ly")):
                continue  # participles and adverbs make poor headings
            if any(_overlaps(p, term) for p in [*picked, *used]):
                continue
            if any(_shares_word(p, term) for p in picked):  # "Local bands & bands play"
                continue
            picked.append(term)
        if not picked:
            first = sections[number][0].plain.rstrip(".!?。！？") if sections[number] else "…"
            picked = [_cut(first, 40, "")]
        used.extend(picked)
        head, last = picked[:-1], picked[-1]
        headings.append(_capitalise(f"{joiner.join(head)} & {last}" if head else last))
    return headings


def _takeaways(
    sections: list[list[_Sentence]],
    scores: dict[int, float],
    n: int,
    taken: set[int],
    keyword_uses: dict[int, int],
    short_first: bool = False,
    dense: bool = False,
) -> list[_Sentence]:
    """The best short statement of each section, then the next best, in source order; ones
    without the keyword first (it is used enough elsewhere: repeating it adds density), and
    with `short_first` ones of 20 words or fewer (the sections' sentences are long)."""
    fit = [
        [
            s
            for s in chosen
            if s.reading <= 35
            and not _is_question(s)
            and _balanced(s.text)
            and s.index not in taken
        ]
        for chosen in sections
    ]
    if dense:  # a keyword in most sentences: the takeaways are the others, when there are enough
        light = [[s for s in candidates if not keyword_uses[s.index]] for candidates in fit]
        if sum(map(len, light)) >= n:
            fit = light

    def rank(s: _Sentence) -> tuple[bool, bool, bool, bool, float, int]:
        long = short_first and s.reading > 20
        heavy = keyword_uses[s.index] > 0
        return (dense and heavy, not _self_contained(s), heavy, long, -scores[s.index], s.index)

    picks = [min(candidates, key=rank) for candidates in fit if candidates][:n]
    rest = sorted((s for candidates in fit for s in candidates if s not in picks), key=rank)
    picks += rest[: max(0, n - len(picks))]
    return sorted(picks, key=lambda s: s.index)


def _closing(
    sentences: list[_Sentence],
    intro: list[_Sentence],
    takeaways: list[_Sentence],
    faq: list[tuple[str, _Sentence]],
    scores: dict[int, float],
    keyword_uses: dict[int, int],
    dense: bool,
    short_first: bool,
    wanted: int = 1,
) -> list[_Sentence]:
    """The article's main statements for a closing section: its best self-contained sentences
    (`wanted` of them, in source order) not yet in the intro, the takeaways or the FAQ answers."""
    used = {s.index for s in [*intro, *takeaways]} | {a.index for _, a in faq}
    fit = [s for s in sentences if s.reading <= 35 and not _is_question(s) and _balanced(s.text)]
    candidates = [s for s in fit if s.index not in used]
    if not candidates:  # a short source: the closing may restate a takeaway
        used = {s.index for s in intro} | {a.index for _, a in faq}
        candidates = [s for s in fit if s.index not in used]

    def rank(s: _Sentence) -> tuple[bool, bool, bool, float, int]:
        heavy = dense and keyword_uses[s.index] > 0
        long = short_first and s.reading > 20
        return (not _self_contained(s), heavy, long, -scores[s.index], s.index)

    return sorted(sorted(candidates, key=rank)[:wanted], key=lambda s: s.index)


def _tables(text: str, room: float) -> list[tuple[str, str]]:
    """The source's data tables (three rows or more, short cells) as markdown under a heading,
    its caption when a short line introduces it, while they fit in `room` words."""
    found: list[tuple[str, str]] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        if not lines[number].lstrip().startswith("|"):
            number += 1
            continue
        start = number
        while number < len(lines) and lines[number].lstrip().startswith("|"):
            number += 1
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in lines[start:number]
        ]
        rows = [r for r in rows if not all(re.fullmatch(r":?-*:?", c) for c in r)]
        width = len(rows[0]) if rows else 0
        cells = [c for r in rows for c in r]
        if len(rows) < 3 or width < 2 or any(len(r) != width for r in rows):
            continue
        if any(count_words(c) > 12 for c in cells) or not any(_plain(c) for c in rows[0]):
            continue  # a layout table, or no header
        sizes = [count_words(_plain(" ".join(r))) for r in rows]
        kept = len(rows)
        while kept > 3 and sum(sizes[:kept]) > room:
            kept -= 1
        if sum(sizes[:kept]) > room:
            continue
        size = sum(sizes[:kept])
        rows = rows[:kept] + ([["…"] * width] if kept < len(rows) else [])  # "…": rows left out
        caption = next((line for line in reversed(lines[:start]) if line.strip()), "")
        caption = _plain(caption).strip().rstrip(":").strip()
        if not caption or caption.startswith("|") or count_words(caption) > 15:
            caption = ", ".join(_plain(c) for c in rows[0][:3] if _plain(c))
        table = [
            "| " + " | ".join(rows[0]) + " |",
            "|" + "---|" * width,
            *("| " + " | ".join(r) + " |" for r in rows[1:]),
        ]
        found.append((_capitalise(caption), "\n".join(table)))
        room -= size
    return found


def _title(base: str, keyword: str, terms: list[_Term]) -> str:
    """The source title carrying the keyword, cut or padded towards 50-60 characters."""
    base = " ".join(base.split())
    if not keyword or contains_keyword(base, keyword):
        title = base
    else:
        title = f"{_capitalise(keyword)}: {base}" if base else _capitalise(keyword)
    if len(title) > TITLE_MAX_CHARS:
        title = _cut(title, TITLE_MAX_CHARS, keyword)
        if keyword and len(title) > TITLE_MAX_CHARS:  # the keyword sits too far in: lead with it
            title = _cut(f"{_capitalise(keyword)}: {base}", TITLE_MAX_CHARS, keyword)
    separator = " – " if ":" in title else ": "
    for term in sorted(terms[:20], key=lambda t: " " not in t.key):  # phrases first
        if len(title) >= TITLE_MIN_CHARS:
            break
        foreign = _NO_SPACE_RE.search(term.display) and not _NO_SPACE_RE.search(base)
        if contains_keyword(title, term.display) or foreign:
            continue
        longer = f"{title}{separator}{_capitalise(term.display)}"
        if len(longer) <= TITLE_MAX_CHARS:
            title = longer
            separator = ", "
    return title


def _cut(text: str, limit: int, keyword: str) -> str:
    """Cut on a word boundary at or below limit, never inside the keyword."""
    if len(text) <= limit:
        return text
    match = re.search(re.escape(keyword), text, flags=re.IGNORECASE) if keyword else None
    keep = match.end() if match else 0
    if keep > limit:
        return text[:keep]
    cut = text.rfind(" ", keep, limit + 1)
    if cut < 0:
        return text[:keep] if keep else text[:limit]
    head = _TRAILING_RE.sub("", text[:cut])
    while " " in head:  # no dangling "of", "and" or "the" at the end
        rest, last = head.rsplit(" ", 1)
        if last.casefold() not in _STOPWORDS or len(_TRAILING_RE.sub("", rest)) < keep:
            break
        head = _TRAILING_RE.sub("", rest)
    return head


def _meta(sentences: list[_Sentence], keyword: str) -> str:
    """Sentences from a keyword sentence on, cut to 150-160 characters; keyword guaranteed.

    Tries the keyword sentences in order; prefers a clean sentence end inside the window,
    then a cut that leaves no short dangling fragment."""
    starts = [i for i, s in enumerate(sentences) if keyword and contains_keyword(s.plain, keyword)]
    candidates = [_meta_from(sentences, start, keyword) for start in [*starts[:10], 0]]

    def rank(pair: tuple[int, str]) -> tuple[bool, bool, int]:
        number, text = pair
        fits = META_MIN_CHARS <= len(text) <= META_MAX_CHARS
        fragment = split_sentences(text)[-1] if text else ""
        dangling = text.endswith("…") and count_words(fragment) < 4
        return (not fits, dangling, number)

    return min(enumerate(candidates), key=rank)[1]


def _meta_from(sentences: list[_Sentence], start: int, keyword: str) -> str:
    text = ""
    for s in sentences[start:]:
        text = f"{text} {s.plain}".strip()
        if len(text) >= META_MAX_CHARS:
            break
    for s in reversed(sentences[:start]):  # a keyword sentence near the end: add what precedes
        if len(text) >= META_MIN_CHARS:
            break
        text = f"{s.plain} {text}".strip()
    text = _fit_meta(text)
    if keyword and not contains_keyword(text, keyword):
        text = _fit_meta(f"{_capitalise(keyword)}: {text}")
    return text


def _fit_meta(text: str) -> str:
    if len(text) <= META_MAX_CHARS:
        return text
    cut = text.rfind(" ", 0, META_MAX_CHARS)
    if cut < META_MIN_CHARS - 20:
        cut = META_MAX_CHARS - 1
    return _TRAILING_RE.sub("", text[:cut]).rstrip(".,;:") + "…"
