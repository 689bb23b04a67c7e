"""The fake LLM's post (what every LLM-path test gets by default) meets the brief: the real SEO
report scores it 90 or more on every fixture article, at two lengths."""

import json
from pathlib import Path

from generator.llm_writer import POST_SCHEMA, build_prompt, parse_post
from generator.seo import count_keyword, seo_report, words
from seoblog_testing.fake_llm import default_responder

GROUND_TRUTH = Path(__file__).resolve().parents[3].parent / "shared/fixtures/extraction"


def test_fake_llm_posts_score_90_or_more_on_every_fixture_article() -> None:
    truth = json.loads((GROUND_TRUTH / "ground-truth.json").read_text())
    low = []
    for page_id, page in sorted(truth.items()):
        text = page["articleBody"]
        title = text.split(".")[0][:80]
        candidates = [w for w in words(text[:400]) if len(w) >= 6] or ["article"]
        keyword = max(candidates, key=lambda w: count_keyword(text, w))
        for length in (400, 800):
            prompt = build_prompt(
                "post_v1", title=title, text=text, keywords=[keyword], language="en", length=length
            )
            request = {
                "messages": [{"role": "user", "content": prompt}],
                "response_format": {"type": "json_schema", "json_schema": {"schema": POST_SCHEMA}},
            }
            draft = parse_post(default_responder(request), keywords=[keyword], language="en")
            report = seo_report(
                title=draft.title,
                slug=draft.slug,
                meta_description=draft.meta_description,
                markdown=draft.markdown,
                keywords=[keyword],
                target_words=length,
                source_text=text,
            )
            if report.score < 90:
                low.append((page_id[:8], keyword, length, report.score, report.reasons))
    assert not low, low[:5]
