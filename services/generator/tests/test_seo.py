import pytest

from generator.seo import (
    CHECK_WEIGHTS,
    ascii_slug,
    contains_keyword,
    count_keyword,
    count_words,
    seo_report,
    shared_shingle_share,
    slugify,
    split_sentences,
)
from seoblog_contracts import SeoReport

LABEL = "> Written offline by seoblog's extractive writer; sentences are taken from the source."
TITLE = "Tuft cells: how the gut sentinels taste danger and react"
META = (
    "Tuft cells line the gut and the airways. They taste chemicals, spot parasites early and "
    "call the immune system to respond long before any damage is done."
)
FILLER = [
    "Researchers in several labs now describe a signal that starts in the small intestine.",
    "The signal travels quickly and reaches immune cells within hours of an infection.",
    "Mice without the receptor recover more slowly from worms and other parasites.",
    "Clinicians hope that the same pathway may explain some allergies in people.",
    "Each finding raises new questions about how the body keeps its balance.",
    "More work is planned for the next two years at three universities.",
]
BODY = "\n\n".join(
    [
        LABEL,
        "Tuft cells are rare, yet they shape how the gut reacts to trouble. " + " ".join(FILLER),
        "## Why tuft cells matter",
        " ".join(reversed(FILLER)),
        "### A closer look",
        " ".join(FILLER[::2]),
        "## What comes next",
        " ".join(FILLER[1::2]) + " " + " ".join(FILLER),
    ]
)
SOURCE = (
    "An unrelated source article talks about weather, harbours, fishing boats and the price "
    "of bread in a small coastal town during a long and windy autumn season."
)


def report(**overrides: object) -> SeoReport:
    arguments: dict[str, object] = {
        "title": TITLE,
        "slug": "tuft-cells-gut-sentinels",
        "meta_description": META,
        "markdown": BODY,
        "keywords": ["tuft cells", "immune system"],
        "target_words": count_words(BODY) - count_words(LABEL),
        "source_text": SOURCE,
    }
    arguments.update(overrides)
    return seo_report(**arguments)  # type: ignore[arg-type]


def test_check_weights_sum_to_one_hundred() -> None:
    assert sum(CHECK_WEIGHTS.values()) == 100


def test_seo_report_gives_a_post_that_passes_every_check_a_full_score() -> None:
    result = report()
    assert result.checks == dict.fromkeys(CHECK_WEIGHTS, True)
    assert result.score == 100
    assert result.reasons == []


def test_seo_report_matches_keywords_ignoring_case_and_unicode_forms() -> None:
    result = report(keywords=["TUFT CELLS"])
    assert result.checks["keyword_in_title"]
    assert result.checks["keyword_in_heading"]


def test_seo_report_skips_the_leading_blockquote_label_when_finding_the_first_paragraph() -> None:
    assert report().checks["keyword_in_first_paragraph"]
    body = BODY.replace("Tuft cells are rare", "These cells are rare")
    labelled_with_keyword = body.replace(LABEL, LABEL + " Tuft cells.")
    result = report(markdown=labelled_with_keyword)
    assert not result.checks["keyword_in_first_paragraph"]
    assert 'main keyword "tuft cells" is not in the first paragraph' in result.reasons


def test_seo_report_explains_each_failed_check_with_the_measured_value() -> None:
    result = report(
        title="Short title",
        slug="gut-sentinels",
        meta_description="Too short.",
        keywords=["parasites"],
    )
    assert result.checks["keyword_in_title"] is False
    assert result.checks["keyword_in_slug"] is False
    assert result.checks["keyword_in_heading"] is False
    assert "title is 11 characters, outside 50-60" in result.reasons
    assert "meta description is 10 characters, outside 150-160" in result.reasons
    assert 'slug "gut-sentinels" does not contain "parasites"' in result.reasons
    assert 'main keyword "parasites" is in no H2-H6 heading' in result.reasons
    assert result.score < 60


def test_seo_report_flags_keyword_stuffing_with_the_density_it_measured() -> None:
    stuffed = BODY + "\n\n" + "Tuft cells help. " * 10
    result = report(markdown=stuffed)
    assert not result.checks["keyword_density_ok"]
    density = next(r for r in result.reasons if r.startswith("keyword density"))
    assert "% is above 2.5%" in density
    assert "(12 uses of" in density


def test_seo_report_flags_a_keyword_that_is_too_rare() -> None:
    result = report(keywords=["immune system", "tuft cells"])
    assert not result.checks["keyword_density_ok"]
    assert any(r.startswith("keyword density 0.") and "below 0.5%" in r for r in result.reasons)


def test_seo_report_counts_length_against_the_target_with_a_tolerance() -> None:
    words = count_words(BODY) - count_words(LABEL)
    assert report(target_words=round(words * 1.2)).checks["length_ok"]
    too_short = report(target_words=words * 3, source_text=SOURCE * 50)
    assert not too_short.checks["length_ok"]
    assert f"post has {words} words, 67% below the {words * 3}-word target" in too_short.reasons[0]
    assert "source was short" not in too_short.reasons[0]


def test_seo_report_says_when_a_short_post_is_due_to_a_short_source() -> None:
    result = report(target_words=2000)
    assert "the source was short: it has only 27 words" in result.reasons[0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (BODY.replace("## What comes next", "# What comes next"), "body has 1 H1 heading(s)"),
        (BODY.replace("## What comes next", "What comes next"), "body has 1 H2 heading(s)"),
        (BODY.replace("### A closer look", "#### A closer look"), "skips from H2 to H4"),
        (BODY.replace("## Why tuft cells matter", "### Why tuft cells matter"), "from H1 to H3"),
    ],
)
def test_seo_report_checks_heading_structure(body: str, problem: str) -> None:
    result = report(markdown=body)
    assert not result.checks["heading_structure_ok"]
    assert any(problem in r for r in result.reasons), result.reasons


def test_seo_report_flags_long_sentences() -> None:
    long_sentence = "Tuft cells " + "and more words " * 10 + "end here."
    body = "\n\n".join([LABEL, long_sentence, "## One", long_sentence, "## Two", long_sentence])
    result = report(markdown=body)
    assert not result.checks["readability_ok"]
    assert "average sentence length 34.0 words is above 25" in result.reasons


def test_seo_report_flags_a_post_copied_from_its_source() -> None:
    result = report(source_text=BODY)
    assert not result.checks["originality"]
    assert any(
        r.startswith("originality: 100% of the post's 8-word sequences appear verbatim")
        for r in result.reasons
    )


def test_seo_report_without_keywords_leaves_keyword_checks_out_of_the_score() -> None:
    result = report(keywords=[], title="Short")
    keyword_checks = {name for name in CHECK_WEIGHTS if name.startswith("keyword_")}
    assert keyword_checks.isdisjoint(result.checks)
    assert (
        result.reasons[0] == "no keywords given: keyword checks are not applicable and not scored"
    )
    applicable = sum(CHECK_WEIGHTS[name] for name in result.checks)
    assert result.score == round(100 * (applicable - CHECK_WEIGHTS["title_length_ok"]) / applicable)


def test_seo_report_treats_a_keyword_without_latin_letters_as_not_applicable_to_the_slug() -> None:
    result = report(keywords=["東京"])
    assert "keyword_in_slug" not in result.checks
    assert any("no Latin transliteration" in r for r in result.reasons)


def test_contains_keyword_matches_whole_words_case_insensitively_across_scripts() -> None:
    assert contains_keyword("Die STRASSE ist lang", "Straße")
    assert contains_keyword("Un CAFÉ noir", "café")
    assert contains_keyword("Tuft\ncells matter", "tuft cells")
    assert not contains_keyword("überall", "über")
    assert not contains_keyword("tuft cellsfoo", "tuft cells")
    assert contains_keyword("東京都の観光", "東京")
    assert contains_keyword("Москва — столица", "москва")
    assert not contains_keyword("anything", "")


def test_count_keyword_counts_every_occurrence() -> None:
    assert count_keyword("SEO tips. More seo, less Seo-ish.", "seo") == 3


def test_count_keyword_skips_a_match_inside_a_word_and_finds_the_next_one() -> None:
    assert count_keyword("seoseo seo", "seo") == 1  # "seoseo" is one word, not two matches
    assert count_keyword("water  \n\t plumes and water plumes", "Water Plumes") == 2
    assert count_keyword("नमस्ते दुनिया", "नमस") == 0  # a vowel sign continues the word
    assert count_keyword("東京東京", "東京") == 2  # no spaces: every occurrence counts


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Crème Brûlée: 10 Tips!", "creme-brulee-10-tips"),
        ("Die Straße über Köln", "die-strasse-uber-koln"),
        ("  Hello,   World  ", "hello-world"),
        ("Smørrebrød & Œuvre", "smorrebrod-oeuvre"),
    ],
)
def test_slugify_transliterates_latin_text_to_ascii_lower_case_hyphens(
    title: str, slug: str
) -> None:
    assert slugify(title) == slug


def test_slugify_falls_back_to_a_short_hash_for_non_latin_scripts() -> None:
    slug = slugify("Привет, мир")
    assert len(slug) == 8
    assert slug.isalnum()
    assert slug.isascii()
    assert slugify("Привет, мир") == slug
    assert slugify("Пока, мир") != slug
    mixed = slugify("iPhone 15 обзор")
    assert mixed.startswith("iphone-15-")
    assert len(mixed) == len("iphone-15-") + 8


def test_slugify_cuts_long_titles_on_a_hyphen() -> None:
    slug = slugify("word " * 40)
    assert len(slug) <= 60
    assert slug.endswith("word")
    assert ascii_slug("Tuft Cells") == "tuft-cells"


def test_split_sentences_handles_abbreviations_decimals_and_non_latin_stops() -> None:
    assert split_sentences("Dr. Smith paid 3.5 dollars. Then he left! Why? Because.") == [
        "Dr. Smith paid 3.5 dollars.",
        "Then he left!",
        "Why?",
        "Because.",
    ]
    assert split_sentences("It rained.” She said so.") == ["It rained.”", "She said so."]
    assert split_sentences("U.S. officials met J. K. Rowling.") == [
        "U.S. officials met J. K. Rowling."
    ]
    assert split_sentences("これは文です。次の文です！最後？") == [
        "これは文です。",
        "次の文です！",
        "最後？",
    ]
    assert split_sentences("A heading\nA line. Another") == ["A heading", "A line.", "Another"]
    assert split_sentences("यह वाक्य है। दूसरा वाक्य।") == ["यह वाक्य है।", "दूसरा वाक्य।"]


def test_count_words_counts_hyphenated_words_once_and_cjk_characters_each() -> None:
    assert count_words("A strange-looking cell, don't you think?") == 6
    assert count_words("東京都") == 3
    assert count_words("नमस्ते दुनिया") == 2


def test_shared_shingle_share_measures_verbatim_eight_word_runs() -> None:
    source = " ".join(f"w{n}" for n in range(40))
    assert shared_shingle_share(source, source) == 1.0
    assert shared_shingle_share("one two three", source) == 0.0
    half = " ".join(f"w{n}" for n in range(8)) + " " + " ".join(f"x{n}" for n in range(8))
    assert 0 < shared_shingle_share(half, source) < 0.2
