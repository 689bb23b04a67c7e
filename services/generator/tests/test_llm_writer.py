"""The LLM writer's pure parts: the schema sent, tidying a post into a draft, the problems
listed against the brief, and the revision prompt."""

import json

import pytest

from generator.llm_writer import (
    POST_SCHEMA,
    build_prompt,
    build_revision,
    parse_post,
    post_problems,
    revision_messages,
    template,
)
from seoblog_contracts import SeoReport
from seoblog_runtime import JobError

BODY = (
    "Water plumes rise above Europa, NASA reports.\n\n## What NASA saw\n\nTelescopes measured "
    "vapour.\n\n### How\n\nBy its light.\n\n## Why water plumes matter\n\nAn ocean may lie below."
)


def answer(**overrides) -> str:
    post = {
        "title": "Water plumes on Europa: what NASA found and why it matters",
        "slug": "water-plumes-europa",
        "meta_description": "x" * 155,
        "outline": ["What NASA saw", "Why water plumes matter"],
        "markdown": BODY,
        "faq": [
            {"question": "Is there water on Europa?", "answer": "Yes, as vapour."},
            {"question": "Who saw it?", "answer": "NASA."},
        ],
        "key_takeaways": ["Plumes were seen", "An ocean may exist", "More missions come"],
    }
    return json.dumps(post | overrides)


def test_schema_sent_to_the_model_carries_the_briefs_limits():
    props = POST_SCHEMA["properties"]
    assert (props["title"]["minLength"], props["title"]["maxLength"]) == (50, 60)
    assert (props["meta_description"]["minLength"], props["meta_description"]["maxLength"]) == (
        150,
        160,
    )
    assert props["faq"]["minItems"] == 2
    assert props["key_takeaways"]["maxItems"] == 5
    assert set(POST_SCHEMA["required"]) == set(props)


def test_prompts_are_versioned_template_files_filled_with_the_job():
    prompt = build_prompt(
        "post_v1", title="T", text="Body", keywords=["water plumes"], language="de", length=600
    )
    assert '"water plumes"' in prompt
    assert '"de"' in prompt
    assert "600 words" in prompt
    assert "{" not in template("revise_v1").format(
        score=1, problems="-", main_keyword="k", language="de", length=1
    )


def test_takeaways_and_faq_become_sections_of_the_body_and_the_outline_follows_headings():
    draft = parse_post(answer(), keywords=["water plumes"], language="en")
    assert draft.markdown.startswith("Water plumes rise above Europa")
    assert "## Key takeaways\n\n- Plumes were seen" in draft.markdown
    assert "## Frequently asked questions\n\n### Is there water on Europa?" in draft.markdown
    assert draft.outline[:3] == ["What NASA saw", "How", "Why water plumes matter"]
    assert draft.faq[0] == ("Is there water on Europa?", "Yes, as vapour.")


def test_sections_already_written_are_not_added_twice():
    body = BODY + "\n\n## Key takeaways\n\n- One\n\n## Frequently asked questions\n\n### Q?\n\nA."
    draft = parse_post(answer(markdown=body), keywords=[], language="en")
    assert draft.markdown.count("## Key takeaways") == 1
    assert draft.markdown.count("## Frequently asked questions") == 1


def test_a_bad_slug_long_title_and_long_meta_are_tidied():
    draft = parse_post(
        answer(
            slug="Water Plumes: Europa!",
            title="Water plumes on Europa: what NASA found, why it matters and what comes next",
            meta_description="word " * 60,
        ),
        keywords=["water plumes"],
        language="en",
    )
    assert draft.slug == "water-plumes-europa"
    assert len(draft.title) <= 60
    assert "Water plumes" in draft.title
    assert len(draft.meta_description) <= 160


def test_slug_gets_the_keyword_when_it_lacks_it():
    draft = parse_post(answer(slug="nasa-news"), keywords=["water plumes"], language="en")
    assert draft.slug.startswith("water-plumes")


def test_a_post_outside_the_schema_is_llm_bad_output():
    with pytest.raises(JobError) as failed:
        parse_post('{"title": "short"}', keywords=[], language="en")
    assert failed.value.code == "llm_bad_output"


def test_problems_name_every_way_the_draft_misses_the_brief():
    draft = parse_post(
        answer(markdown="One paragraph only, far too short. " * 3, faq=[], key_takeaways=["a"]),
        keywords=["ocean worlds"],
        language="en",
    )
    problems = post_problems(draft, keywords=["ocean worlds"], length=800)
    text = "\n".join(problems)
    assert 'title does not contain the main keyword "ocean worlds"' in text
    assert "two H2" in text
    assert "800 were asked for" in text
    assert "faq has 0 questions" in text
    assert "key_takeaways has 1 items" in text


def test_revision_prompt_carries_the_score_the_reasons_and_the_previous_post():
    draft = parse_post(answer(), keywords=["water plumes"], language="en")
    report = SeoReport(score=41, reasons=["keyword density 0.1% is below 0.5%"])
    feedback = build_revision(
        "revise_v1",
        report=report,
        problems=["faq has 1 questions; give 2-4"],
        keywords=["water plumes"],
        language="en",
        length=600,
    )
    assert "41/100" in feedback
    assert "- keyword density 0.1% is below 0.5%" in feedback
    assert "- faq has 1 questions" in feedback
    messages = revision_messages("the prompt", draft, feedback)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert json.loads(messages[1]["content"])["title"] == draft.title
