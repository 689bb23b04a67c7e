import json
from pathlib import Path

import pytest

from translator.segment import (
    estimate_tokens,
    join_segments,
    normalize_markdown,
    protect,
    restore,
    split_segments,
    structure_signature,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared"

DOCUMENT = "\n".join(  # trailing spaces and extra blank lines on purpose
    [
        "# A guide to SEO tools   ",
        "",
        "Search engines read [the sitemap](https://example.com/sitemap.xml) first.  ",
        "Then they follow links.",
        "",
        "",
        "",
        "## Lists",
        "",
        "- one item",
        "- two items with `inline code`",
        "1. first",
        "2. second",
        "",
        "```python",
        "def handler():    ",
        "    pass",
        "",
        "",
        "",
        "value = 1",
        "```",
        "",
        "| Tool | Price |",
        "|:-----|------:|",
        "| [Crawler](https://example.com/c) | 10 |",
        "| Indexer | 20 |",
        "",
        "Read more at <https://example.com/more>.",
        "",
    ]
)


def article_bodies() -> list[str]:
    data = json.loads((SHARED / "fixtures/extraction/ground-truth.json").read_text())
    return [page["articleBody"] for _, page in sorted(data.items())]


def test_estimate_tokens_counts_four_characters_per_token_rounded_up() -> None:
    assert [estimate_tokens(t) for t in ["", "a", "abcd", "abcde"]] == [0, 1, 1, 2]


def test_normalize_markdown_strips_trailing_spaces_and_collapses_blank_lines() -> None:
    assert normalize_markdown("\n\nTitle  \n\n\n\nText \t\n\n") == "Title\n\nText"


def test_normalize_markdown_keeps_fenced_code_verbatim() -> None:
    code = "```\nx = 1   \n\n\n\ny = 2\n```"
    assert normalize_markdown(f"Intro\n\n{code}\n\n\nOutro") == f"Intro\n\n{code}\n\nOutro"


def test_split_segments_keeps_a_short_document_in_one_segment() -> None:
    assert split_segments(DOCUMENT) == [normalize_markdown(DOCUMENT)]


@pytest.mark.parametrize("max_tokens", [25, 60, 800])
def test_join_segments_reverses_split_segments_up_to_normalisation(max_tokens: int) -> None:
    segments = split_segments(DOCUMENT, max_tokens=max_tokens)
    assert len(segments) > 1 or max_tokens == 800
    assert join_segments(segments) == normalize_markdown(DOCUMENT)


def test_join_segments_only_adds_paragraph_breaks_where_a_long_paragraph_was_split() -> None:
    segments = split_segments(DOCUMENT, max_tokens=5)
    joined = join_segments(segments)
    assert joined != normalize_markdown(DOCUMENT)
    assert joined.split() == normalize_markdown(DOCUMENT).split()
    assert structure_signature(joined) == structure_signature(DOCUMENT)


def test_split_segments_round_trips_every_fixture_article_at_the_default_budget() -> None:
    for body in article_bodies():
        assert join_segments(split_segments(body)) == normalize_markdown(body)


def test_split_segments_packs_paragraphs_under_the_token_budget() -> None:
    paragraphs = [f"Paragraph {n} " + "word " * 30 for n in range(20)]
    segments = split_segments("\n\n".join(paragraphs), max_tokens=100)
    assert len(segments) > 1
    assert all(estimate_tokens(s) <= 100 for s in segments)
    assert all("\n\n" in s for s in segments[:-1])  # packed, not one paragraph each


def test_split_segments_never_splits_a_fenced_code_block_even_over_budget() -> None:
    code = "```js\n" + "\n\n".join(f"const v{n} = {n};" for n in range(60)) + "\n```"
    segments = split_segments(f"Intro.\n\n{code}\n\nOutro.", max_tokens=50)
    assert code in segments
    assert all(s.count("```") in (0, 2) for s in segments)


def test_split_segments_never_splits_a_table_even_over_budget() -> None:
    table = "| a | b |\n|---|---|\n" + "\n".join(f"| row {n}. Yes. | {n} |" for n in range(40))
    segments = split_segments(f"Intro.\n\n{table}\n\nOutro.", max_tokens=50)
    assert table in segments


def test_split_segments_splits_a_paragraph_over_budget_on_sentence_boundaries() -> None:
    sentences = [f"Sentence number {n} says something short." for n in range(30)]
    segments = split_segments(" ".join(sentences), max_tokens=60)
    assert len(segments) > 1
    assert all(estimate_tokens(s) <= 60 for s in segments)
    assert all(s.endswith(".") for s in segments)
    assert " ".join(segments) == " ".join(sentences)


def test_split_segments_splits_cjk_paragraphs_after_full_width_stops() -> None:
    paragraph = "这是一个很长的句子，用来测试分段功能。" * 40
    segments = split_segments(paragraph, max_tokens=50)
    assert all(s.endswith("。") and estimate_tokens(s) <= 50 for s in segments)
    assert "".join(segments) == paragraph


def test_split_segments_cuts_a_sentence_over_budget_between_words_outside_links() -> None:
    text = "word " * 50 + "[a link with words](https://example.com/x) " + "word " * 50
    segments = split_segments(text.strip(), max_tokens=40)
    assert all(estimate_tokens(s) <= 40 for s in segments)
    assert any("[a link with words](https://example.com/x)" in s for s in segments)


def test_structure_signature_counts_headings_items_links_fences_and_table_rows() -> None:
    assert structure_signature(DOCUMENT) == (2, 4, 3, 1, 3)


def test_structure_signature_ignores_markdown_inside_fenced_code() -> None:
    code = "```\n# not a heading\n- not an item\n[no](link)\n```"
    assert structure_signature(code) == (0, 0, 0, 1, 0)


def test_structure_signature_does_not_count_thematic_breaks_as_list_items() -> None:
    assert structure_signature("Text\n\n---\n\n* * *\n\n- item") == (0, 1, 0, 0, 0)


def test_structure_signature_changes_when_a_translation_drops_a_link() -> None:
    translated = DOCUMENT.replace("[the sitemap](https://example.com/sitemap.xml)", "die Sitemap")
    assert structure_signature(translated) != structure_signature(DOCUMENT)


def test_protect_replaces_urls_inline_code_and_glossary_terms_with_placeholders() -> None:
    text = "Use `npm run build` with SEO Tools, see https://example.com/docs."
    protected, mapping = protect(text, ["SEO Tools"])
    assert protected == "Use ⟦0⟧ with ⟦1⟧, see ⟦2⟧."
    assert mapping == {
        "⟦0⟧": "`npm run build`",
        "⟦1⟧": "SEO Tools",
        "⟦2⟧": "https://example.com/docs",
    }


def test_protect_matches_glossary_terms_case_sensitively_and_as_whole_words() -> None:
    protected, mapping = protect("SEO, seo, SEOs and SEO.", ["SEO"])
    assert protected == "⟦0⟧, seo, SEOs and ⟦0⟧."
    assert mapping == {"⟦0⟧": "SEO"}


def test_protect_prefers_the_longest_glossary_term() -> None:
    protected, mapping = protect(
        "Content marketing beats content.", ["Content", "Content marketing"]
    )
    assert protected == "⟦0⟧ beats content."
    assert mapping["⟦0⟧"] == "Content marketing"


def test_protect_keeps_link_text_translatable_but_protects_the_target() -> None:
    protected, mapping = protect("Read [the guide](/docs/guide) now.", [])
    assert protected == "Read [the guide](⟦0⟧) now."
    assert mapping == {"⟦0⟧": "/docs/guide"}


def test_protect_keeps_balanced_parentheses_in_urls() -> None:
    protected, mapping = protect("(see https://en.wikipedia.org/wiki/Foo_(bar))", [])
    assert protected == "(see ⟦0⟧)"
    assert mapping["⟦0⟧"] == "https://en.wikipedia.org/wiki/Foo_(bar)"


def test_protect_matches_cjk_glossary_terms_inside_words() -> None:
    protected, mapping = protect("東京都と東京", ["東京"])
    assert protected == "⟦0⟧都と⟦0⟧"
    assert mapping == {"⟦0⟧": "東京"}


def test_restore_reverses_protect() -> None:
    for text in [DOCUMENT, *article_bodies()[:20]]:
        protected, mapping = protect(text, ["SEO", "Crawler", "the"])
        assert restore(protected, mapping) == text


def test_restore_tolerates_spaces_a_translator_put_inside_placeholders() -> None:
    _, mapping = protect("Visit https://example.com today.", [])
    assert (
        restore("Besuchen Sie ⟦ 0 ⟧ heute.", mapping) == "Besuchen Sie https://example.com heute."
    )


def test_restore_leaves_unknown_placeholders_alone() -> None:
    assert restore("keep ⟦7⟧", {"⟦0⟧": "x"}) == "keep ⟦7⟧"
