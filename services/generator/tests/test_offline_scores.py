"""What the offline writer does for sources that score low as they are: too short for the length
asked, a data table instead of prose, a keyword repeated as a list of tags."""

from __future__ import annotations

from generator.offline import write_offline
from generator.seo import count_words, seo_report, split_sentences

SHORT_SOURCE = " ".join(
    [
        "The river festival opens on Friday with a parade through the old town.",
        "Local bands play on three stages along the water until midnight.",
        "Food stalls from twelve villages sell smoked fish and fresh bread.",
        "Children can build rafts in a workshop run by the rowing club.",
        "On Sunday the boat race decides which village keeps the silver oar.",
        "Entry is free, and buses run every twenty minutes from the station.",
    ]
)
STANDINGS = "\n".join(
    [
        "**Final standings after the boat race:**",
        "",
        "| **Pos.** | **Village** | **Points** |",
        *(f"| {n} | Village {chr(64 + n)} | {100 - 7 * n} |" for n in range(1, 13)),
    ]
)


def draft_and_report(text: str, keyword: str, length: int) -> tuple[str, int, dict[str, bool]]:
    draft = write_offline(
        title="River festival opens with a parade and a boat race",
        text=text,
        keywords=[keyword],
        language="en",
        length=length,
    )
    report = seo_report(
        title=draft.title,
        slug=draft.slug,
        meta_description=draft.meta_description,
        markdown=draft.markdown,
        keywords=[keyword],
        target_words=length,
        source_text=text,
        language="en",
    )
    return draft.markdown, report.score, report.checks


def prose_lines(markdown: str) -> list[str]:
    return [
        line.removeprefix("- ")
        for line in markdown.splitlines()[1:]
        if line.strip() and not line.startswith(("#", "|"))
    ]


def test_a_short_source_fills_its_length_with_takeaways_questions_and_a_closing_from_it() -> None:
    markdown, score, checks = draft_and_report(SHORT_SOURCE, "festival", 240)
    assert checks["length_ok"], count_words(markdown)
    assert "## In short" in markdown
    assert "## Key takeaways" in markdown
    for line in prose_lines(markdown):
        for sentence in split_sentences(line):
            assert sentence.removeprefix("**Festival:** ") in SHORT_SOURCE, sentence
    assert score >= 90


def test_a_source_whose_content_is_a_table_gets_the_table_under_its_caption() -> None:
    text = f"{SHORT_SOURCE}\n\n{STANDINGS}"
    markdown, _, checks = draft_and_report(text, "festival", 300)
    assert "## Final standings after the boat race" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert rows[0] == "| **Pos.** | **Village** | **Points** |"
    assert rows[1] == "|---|---|---|"
    source_rows = set(STANDINGS.splitlines())
    assert all(row in source_rows for row in rows[2:] if "…" not in row)
    assert checks["length_ok"]


def test_a_table_too_long_for_the_length_keeps_its_first_rows_and_marks_the_rest() -> None:
    rows = (f"| {n} | Village {n} | {500 - 7 * n} |" for n in range(1, 61))
    table = "\n".join(
        ["**Final standings after the boat race:**", "", "| Pos. | Village | Points |"]
    )
    text = f"{SHORT_SOURCE}\n\n{table}\n" + "\n".join(rows)
    markdown, _, checks = draft_and_report(text, "festival", 250)
    kept = [line for line in markdown.splitlines() if line.startswith("|")]
    assert kept[2:5] == [
        "| 1 | Village 1 | 493 |",
        "| 2 | Village 2 | 486 |",
        "| 3 | Village 3 | 479 |",
    ]
    assert kept[-1] == "| … | … | … |"
    assert 3 < len(kept) - 3 < 60
    assert checks["length_ok"]


def test_a_list_of_tags_repeating_the_keyword_is_left_out() -> None:
    tags = "regatta 2024, regatta boats, regatta results, regatta river town"
    text = f"{SHORT_SOURCE}\n\n{tags}"
    markdown, _, checks = draft_and_report(text, "regatta", 200)
    assert tags not in markdown
    assert checks["keyword_density_ok"]


def test_a_sentence_cut_out_of_an_emphasised_run_leaves_no_unpaired_marker() -> None:
    text = "**What is new in the spring festival pack? New boats for the race!**\n\n" + SHORT_SOURCE
    markdown, _, _ = draft_and_report(text, "festival", 200)
    assert "What is new in the spring festival pack?" in markdown
    for line in markdown.splitlines():
        assert line.count("**") % 2 == 0, line


def test_questions_in_other_languages_carry_no_english_article() -> None:
    text = " ".join(
        [
            "A equipe do hospital registrou o arrombamento de dois carros nesta manhã.",
            "A equipe chamou a polícia, que foi até o local verificar os danos.",
            "Os pacientes da equipe estão sendo reagendados para a tarde.",
            "A equipe prevê que o atendimento estará normalizado amanhã cedo.",
            "Os carros estavam sem baterias e com marcas de depredação.",
            "O hospital pediu mais segurança para o estacionamento da unidade.",
        ]
    )
    draft = write_offline(
        title="Hospital registra arrombamento", text=text, keywords=[], language="pt", length=300
    )
    assert draft.faq
    assert not [q for q, _ in draft.faq if " the " in q], draft.faq


def test_takeaways_say_no_keyword_sentence_again_when_the_keyword_would_be_too_dense() -> None:
    text = " ".join(
        [
            "The ferry to the island leaves the harbour at seven every morning.",
            "Tickets are sold at the kiosk beside the pier.",
            "Bikes travel free on weekdays.",
            "The crossing takes forty minutes in calm weather.",
            "In winter the last ferry returns before dark.",
            "Children under six ride without a ticket.",
        ]
    )
    markdown, _, checks = draft_and_report(text, "ferry", 300)
    assert checks["keyword_density_ok"], markdown
    takeaways = markdown.split("\n## ")[-3]  # takeaways, questions, closing: the last three
    assert takeaways.startswith("Key takeaways"), markdown
    assert "ferry" not in takeaways.lower()
    assert not checks["length_ok"]  # 49 words of source: too short for 300 either way


def test_the_rest_of_a_sentence_broken_by_a_paragraph_break_is_no_sentence_of_the_post() -> None:
    broken = (
        "The rowing club lends boats to every village team that enters the race, giving them an"
        "\n\neffective way to train on the river for weeks before the festival begins."
    )
    about = "**About eventbrite**\n\neventbrite sells the festival tickets online and at the gate."
    text = SHORT_SOURCE.replace(" Children can", f"\n\n{broken}\n\nChildren can") + f"\n\n{about}"
    markdown, _, _ = draft_and_report(text, "festival", 240)
    assert "Food stalls from twelve villages" in markdown  # the sentences around it are used
    assert "effective way to train" not in markdown
    assert "eventbrite sells the festival tickets" in markdown  # after a heading in bold
