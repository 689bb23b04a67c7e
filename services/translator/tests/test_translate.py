"""The checks a translation passes before it is published: structure and glossary."""

from translator.translate import check_translation, segment_key

SOURCE = "## Europa\n\nNASA saw water plumes.\n\n- one\n- two\n\nSee [NASA](https://nasa.gov)."


def test_a_faithful_translation_has_no_problems():
    result = (
        "## Europa\n\nDie NASA sah water plumes.\n\n- eins\n- zwei\n\n[NASA](https://nasa.gov)."
    )
    assert check_translation(SOURCE, result, ["water plumes", "NASA"]) == []


def test_a_lost_heading_list_item_or_link_is_reported():
    result = "Europa\n\nDie NASA sah water plumes.\n\n- eins\n\nSiehe NASA."
    problems = check_translation(SOURCE, result, [])
    assert problems == ["markdown structure changed: headings 1->0, list items 2->1, links 1->0"]


def test_a_glossary_term_the_translator_dropped_is_reported():
    result = (
        "## Europa\n\nDie NASA sah Wasserfontänen.\n\n- eins\n- zwei\n\n[NASA](https://nasa.gov)."
    )
    assert check_translation(SOURCE, result, ["water plumes"]) == [
        "glossary terms lost: water plumes"
    ]


def test_segment_cache_key_changes_with_everything_that_changes_the_output():
    base = segment_key("text", "de", "gpt-4o-mini", "translate-v1")
    assert base == segment_key("text", "de", "gpt-4o-mini", "translate-v1")
    others = {
        segment_key("text!", "de", "gpt-4o-mini", "translate-v1"),
        segment_key("text", "fr", "gpt-4o-mini", "translate-v1"),
        segment_key("text", "de", "gpt-4o", "translate-v1"),
        segment_key("text", "de", "gpt-4o-mini", "translate-v2"),
    }
    assert base not in others
    assert len(others) == 4
