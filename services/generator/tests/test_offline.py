import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from generator.offline import MAX_SECTIONS, MIN_SECTIONS, OFFLINE_LABEL, Draft, write_offline
from generator.seo import count_words, seo_report, split_sentences

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
TUFT_CELLS = "bdb56ac83513635db1d8b9eb46b2da4c0de8da2f1f28f5bf5163df3eb3d3ec06"  # Quanta Magazine
E_HEALTH_RECORD = "57b4dafd18cfd0531b69f81e87158648227c673ef159f8d8c87d34e34bdb21f2"  # German
JAILBREAK = "85439e26c41c75901820d01a13e8cea7836abb58635ea3986f71a163ab0311d3"  # Japanese
TITLE = "Tuft Cells That Taste Danger Set Off Immune Responses"
LABEL = (
    "> Written offline by seoblog's extractive writer (no LLM was configured);"
    " sentences are taken from the source article."
)


@cache
def ground_truth() -> dict[str, str]:
    data = json.loads((SHARED / "fixtures/extraction/ground-truth.json").read_text())
    return {page_id: page["articleBody"] for page_id, page in data.items()}


def article(page_id: str) -> str:
    return ground_truth()[page_id]


def tuft_cells_draft(**overrides: object) -> Draft:
    arguments: dict[str, object] = {
        "title": TITLE,
        "text": article(TUFT_CELLS),
        "keywords": ["tuft cells", "taste receptors"],
        "language": "en",
        "length": 1000,
    }
    arguments.update(overrides)
    return write_offline(**arguments)  # type: ignore[arg-type]


def squash(text: str) -> str:
    return " ".join(text.split())


def content_lines(markdown: str) -> list[str]:
    """Body text without the label, headings and list markers: what must come from the source."""
    lines = []
    for line in markdown.splitlines():
        if not line.strip() or line.startswith(("#", ">")):
            continue
        lines.append(line.removeprefix("- "))
    return lines


def test_the_label_is_the_first_line_of_every_offline_post() -> None:
    assert OFFLINE_LABEL == LABEL
    for draft in [
        tuft_cells_draft(),
        tuft_cells_draft(keywords=[], length=300),
        write_offline(title="", text="", keywords=[], language="de", length=500),
    ]:
        assert draft.markdown.splitlines()[0] == LABEL


def test_write_offline_puts_the_main_keyword_in_title_slug_meta_intro_and_a_heading() -> None:
    draft = tuft_cells_draft()
    intro = draft.markdown.split("\n\n")[1]
    headings = [line for line in draft.markdown.splitlines() if line.startswith("## ")]
    assert "tuft cells" in draft.title.lower()
    assert "tuft-cells" in draft.slug
    assert "tuft cells" in draft.meta_description.lower()
    assert "tuft cells" in intro.lower()
    assert any("tuft cells" in h.lower() for h in headings)


def test_write_offline_keeps_title_and_meta_description_inside_seo_lengths() -> None:
    draft = tuft_cells_draft()
    assert 50 <= len(draft.title) <= 60
    assert 150 <= len(draft.meta_description) <= 160


def test_write_offline_leads_with_the_keyword_when_the_title_lacks_it() -> None:
    draft = tuft_cells_draft(keywords=["taste receptors"])
    assert draft.title.lower().startswith("taste receptors")
    assert len(draft.title) <= 60
    assert "taste receptors" in draft.meta_description.lower()


def test_write_offline_trims_a_long_title_on_a_word_boundary_without_cutting_the_keyword() -> None:
    long_title = "How tuft cells, the sentinels of the gut, taste danger and wake the immune system"
    draft = tuft_cells_draft(title=long_title)
    assert len(draft.title) <= 60
    assert long_title.startswith(draft.title)
    assert long_title[len(draft.title)] in " ,"
    assert "tuft cells" in draft.title


def test_write_offline_builds_three_to_six_sections_and_the_outline_lists_every_h2() -> None:
    draft = tuft_cells_draft()
    h2 = [line[3:] for line in draft.markdown.splitlines() if line.startswith("## ")]
    assert h2 == draft.outline
    sections = h2[:-2]  # the last two are the takeaways and the FAQ
    assert MIN_SECTIONS <= len(sections) <= MAX_SECTIONS
    assert len(set(sections)) == len(sections)
    assert not any(line.startswith("# ") for line in draft.markdown.splitlines())


def test_write_offline_headings_are_made_of_words_from_their_section() -> None:
    draft = tuft_cells_draft()
    chunks = draft.markdown.split("\n## ")[1:-2]
    for chunk in chunks:
        heading, body = chunk.split("\n", 1)
        for term in heading.replace(" & ", ", ").split(", "):
            assert term.lower() in body.lower()


def test_write_offline_never_writes_a_sentence_that_is_not_in_the_source() -> None:
    source = squash(article(TUFT_CELLS))
    draft = tuft_cells_draft()
    for line in content_lines(draft.markdown):
        for sentence in split_sentences(line):
            assert squash(sentence) in source, sentence
    for answer in [a for _, a in draft.faq] + draft.takeaways:
        assert squash(answer) in source


def test_write_offline_sentences_come_from_the_source_in_other_languages_too() -> None:
    for page, language in [(E_HEALTH_RECORD, "de"), (JAILBREAK, "ja")]:
        source = squash(article(page))
        draft = write_offline(
            title="Titel", text=article(page), keywords=[], language=language, length=600
        )
        for line in content_lines(draft.markdown):
            for sentence in split_sentences(line):
                assert squash(sentence) in source, sentence


TRADEMARK_FUNCTIONS = (  # 95 characters: about 48 words of reading, a usual Japanese sentence
    "商標には、同じ商標が付された商品は同じ提供元のものであるという、商品の出所を表示する機能"
    "（出所表示機能）、同じ商標が付された商品は同じ品質であることを保証する機能（品質保証機能）があります。"
)
WHY_INFRINGEMENT = "ではなぜ、改造した製品を販売すると、権利の侵害になるのでしょうか。"
BECAUSE = "その理由は、製品の品質が保証されなくなるからです。"
MODIFIED_PHONES = "\n\n".join(
    [
        "先日、改造したスマートフォンを販売した男性が逮捕されたというニュースを耳にしました。",
        "改造したスマートフォンでも、もともとは正規の店で購入したものです。",
        f"{WHY_INFRINGEMENT} {BECAUSE}",
        TRADEMARK_FUNCTIONS,
        "通常、正規のルートで販売された製品をそのまま転売する場合は、侵害にはなりません。",
        "しかし、権利者の意思に基づくことなく製品に改造を加えて販売した場合は、侵害と判断される場合があります。",
    ]
)


def test_write_offline_uses_a_japanese_sentence_of_a_hundred_characters() -> None:
    draft = write_offline(
        title="製品の改造が法律違反に",
        text=MODIFIED_PHONES,
        keywords=["出所"],
        language="ja",
        length=400,
    )
    assert TRADEMARK_FUNCTIONS in draft.markdown.split("\n\n")[1]  # the keyword's sentence leads


def test_write_offline_takes_a_japanese_question_ending_in_ka_and_its_answer_for_the_faq() -> None:
    draft = write_offline(
        title="製品の改造が法律違反に",
        text=MODIFIED_PHONES,
        keywords=["スマートフォン"],
        language="ja",
        length=400,
    )
    assert (WHY_INFRINGEMENT, BECAUSE) in draft.faq
    assert not [a for _, a in draft.faq if a.endswith("か。")]


def test_write_offline_frames_takeaways_and_faq_in_the_target_language() -> None:
    german = write_offline(
        title="Die elektronische Patientenakte",
        text=article(E_HEALTH_RECORD),
        keywords=["Patientenakte"],
        language="de",
        length=800,
    )
    assert "Das Wichtigste in Kürze" in german.outline
    assert "Häufige Fragen" in german.outline
    assert "## Key takeaways" not in german.markdown


def test_write_offline_writes_takeaways_and_a_short_faq() -> None:
    draft = tuft_cells_draft()
    assert 3 <= len(draft.takeaways) <= 5
    assert 2 <= len(draft.faq) <= 3
    for question, answer in draft.faq:
        assert question.endswith("?")
        assert f"### {question}" in draft.markdown
        assert answer
    for takeaway in draft.takeaways:
        assert not takeaway.endswith("?")


def test_write_offline_body_is_near_the_requested_length() -> None:
    for length in (600, 1000, 1500):
        draft = tuft_cells_draft(length=length)
        words = count_words(draft.markdown.split("\n\n", 1)[1])
        assert 0.75 * length <= words <= 1.25 * length, (length, words)


def test_write_offline_is_shorter_than_asked_when_the_source_is_short() -> None:
    text = (
        "Solar panels turn sunlight into electricity for homes. "
        "Solar panels work best on roofs that face the sun. "
        "Most solar panels last for about twenty five years.\n\n"
        "Installers check the roof before fitting solar panels. "
        "Batteries can store the power that solar panels make during the day."
    )
    draft = write_offline(
        title="Solar panels", text=text, keywords=["solar panels"], language="en", length=1500
    )
    assert count_words(draft.markdown) < 300
    source = squash(text)
    for line in content_lines(draft.markdown):
        for sentence in split_sentences(line):
            assert squash(sentence) in source


def test_write_offline_chooses_a_salient_keyword_from_the_title_when_none_is_given() -> None:
    draft = tuft_cells_draft(keywords=[])
    assert "tuft cells" in draft.title.lower()
    assert "tuft cells" in draft.meta_description.lower()


def test_write_offline_labels_the_intro_with_a_keyword_missing_from_the_source() -> None:
    draft = tuft_cells_draft(keywords=["gut sentinels"])
    intro = draft.markdown.split("\n\n")[1]
    assert intro.startswith("**Gut sentinels:** ")
    assert "gut sentinels" in draft.title.lower()
    assert "gut sentinels" in draft.meta_description.lower()


def test_write_offline_skips_code_tables_headings_and_repeated_sentences() -> None:
    prose = " ".join(f"Sentence number {n} explains caching in plain words." for n in range(12))
    text = "\n\n".join(
        [
            "# Caching explained",
            prose,
            "```python\nprint('This code line must never appear in the post.')\n```",
            "| Column one is here. | Column two. |\n|---|---|\n| A cell sentence here. | x |",
            prose,
        ]
    )
    draft = write_offline(
        title="Caching", text=text, keywords=["caching"], language="en", length=2000
    )
    assert "print(" not in draft.markdown
    assert "Column one" not in draft.markdown
    assert "# Caching explained" not in draft.markdown
    sections = draft.markdown.split("## Key takeaways")[0]
    paragraphs = "\n".join(line for line in sections.splitlines() if not line.startswith("#"))
    for n in range(12):
        assert paragraphs.count(f"Sentence number {n} explains") == 1


def test_write_offline_makes_an_ascii_slug_and_a_hash_for_non_latin_titles() -> None:
    japanese = write_offline(
        title="脱獄したiPhoneの販売は商標権侵害",
        text=article(JAILBREAK),
        keywords=[],
        language="ja",
        length=600,
    )
    assert japanese.slug.isascii()
    assert japanese.slug.startswith("iphone-")
    assert len(japanese.slug.rsplit("-", 1)[1]) == 8
    french = tuft_cells_draft(title="Les cellules à houppe goûtent le danger", keywords=["danger"])
    assert french.slug.startswith("les-cellules-a-houppe-goutent-le-danger")


def test_write_offline_handles_an_empty_article() -> None:
    draft = write_offline(title="", text="", keywords=["seo"], language="en", length=800)
    assert draft.markdown == LABEL + "\n"
    assert draft.outline == []
    assert draft.faq == []
    assert draft.title == "Seo"


def test_write_offline_is_deterministic_even_across_hash_seeds() -> None:
    assert tuft_cells_draft() == tuft_cells_draft()
    script = (
        "import sys; sys.path[:0] = " + repr(sys.path) + "\n"
        "from test_offline import tuft_cells_draft\n"
        "print(repr(tuft_cells_draft()))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
            cwd=Path(__file__).parent,
        )
        outputs.add(result.stdout)
    assert outputs == {repr(tuft_cells_draft()) + "\n"}


def test_seo_report_scores_the_offline_draft_and_reports_copied_text_honestly() -> None:
    draft = tuft_cells_draft()
    report = seo_report(
        title=draft.title,
        slug=draft.slug,
        meta_description=draft.meta_description,
        markdown=draft.markdown,
        keywords=["tuft cells", "taste receptors"],
        target_words=1000,
        source_text=article(TUFT_CELLS),
    )
    assert report.checks["originality"] is False
    assert any(r.startswith("originality: ") and "verbatim" in r for r in report.reasons)
    passed_except_originality = {
        name: ok for name, ok in report.checks.items() if name != "originality"
    }
    assert all(passed_except_originality.values()), report.reasons
    assert 80 <= report.score < 100


BOOKSHOP = "".join(
    [
        "東京の小さな書店では、毎週土曜日の午後に地元の作家を招いて朗読会を開いており、多くの常連客が集まります。",
        "朗読会のあとには作家と読者が直接話せる時間が設けられ、新しい作品について意見を交わすことができます。",
        "店主によると、この取り組みを始めてから若い世代の来店者が増え、売り上げも少しずつ回復してきたそうです。",
        "書店の二階には小さな喫茶スペースがあり、購入した本をその場でゆっくり読むことができるようになっています。",
        "近くの大学の学生たちも授業の合間に立ち寄り、専門書や雑誌を手に取りながら友人と語り合っています。",
        "地域の図書館とも協力しており、子ども向けの読み聞かせ会を月に一度、交代で開催する計画も進んでいます。",
        "店主は今後、電子書籍では味わえない紙の本の魅力を、より多くの人に伝えていきたいと話しています。",
        "朗読会の予定は店頭の掲示板と公式サイトで案内されており、参加費は無料で予約も必要ありません。",
    ]
)


def bookshop_draft(length: int = 400) -> Draft:
    return write_offline(
        title="書店の朗読会", text=BOOKSHOP, keywords=["朗読会"], language="ja", length=length
    )


def test_a_japanese_post_of_long_sentences_is_repaired_on_its_reading_length() -> None:
    """The repair estimated the average sentence in characters (50 here, not 25 words of
    reading) and dropped sentences until the 400-word post had 207; the takeaways, said again,
    made the 300-word post 433 words long."""
    for length in (300, 400):
        draft = bookshop_draft(length)
        report = seo_report(
            title=draft.title,
            slug=draft.slug,
            meta_description=draft.meta_description,
            markdown=draft.markdown,
            keywords=["朗読会"],
            target_words=length,
            source_text=BOOKSHOP,
            language="ja",
        )
        assert report.checks["length_ok"], (length, report.reasons)
        assert report.checks["readability_ok"], (length, report.reasons)


def test_japanese_takeaways_are_limited_in_words_of_reading_not_in_characters() -> None:
    """Sentences of 46-52 characters are 23-26 words of reading as the SEO report counts them
    (two characters one word): short enough for a takeaway, where the 35-word limit compared
    to characters left none."""
    draft = bookshop_draft()
    assert draft.takeaways, draft.markdown
    assert all(t in BOOKSHOP for t in draft.takeaways)


def test_a_japanese_faq_asks_about_the_articles_terms_and_answers_on_its_subject_first() -> None:
    """Terms of kanji are nouns a reader asks about (the FAQ asked about the keyword only), and
    an answer that opens on its subject comes first (the opening was never found in Japanese:
    its characters were joined with spaces)."""
    from generator.offline import _answer_rank, _sentences

    draft = bookshop_draft()
    questions = [q for q, _ in draft.faq]
    assert any("朗読会" not in q for q in questions), questions
    answer = next(a for q, a in draft.faq if "「朗読会」" in q)
    assert answer.startswith("朗読会"), draft.faq
    sentences = _sentences(BOOKSHOP, "ja")
    scores = dict.fromkeys((s.index for s in sentences), 1.0)
    opens = [not _answer_rank(s, "朗読会", scores)[0] for s in sentences]
    # The second and the last open on it; the first has it 31 characters in (15.5 words).
    assert opens == [False, True, False, False, False, False, False, True]
