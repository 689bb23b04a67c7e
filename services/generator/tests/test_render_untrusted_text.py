"""Issue 12.8: text of the source article that talks about HTML stays text in the post, and
external images (tracking pixels) do not survive rendering."""

from __future__ import annotations

import re

from generator.offline import write_offline
from generator.render import render_html, render_page

# What an extractor returns for a page that showed `&lt;script&gt;...` in its text: the
# entities are decoded, so the article's words contain the angle brackets.
HOSTILE_ARTICLE = (
    "Cross-site scripting is the most common web bug. A page that echoes input may run "
    "<script>alert(document.cookie)</script> in a reader's browser. Another classic is "
    "<img src=x onerror=alert(1)> which runs code when the image fails to load. "
    "Escaping output is the cure for cross-site scripting in every template engine. "
    "Content security policies limit the damage of cross-site scripting further. "
) * 3


def page_of(markdown: str) -> str:
    return render_page(markdown, title="T", description="D", url=None, language="en", faq=[])


def test_an_article_quoting_script_and_img_tags_shows_them_as_text_in_the_post() -> None:
    draft = write_offline(
        title="Cross-site scripting explained",
        text=HOSTILE_ARTICLE,
        keywords=["cross-site scripting"],
        language="en",
        length=300,
    )
    assert "<script>alert" in draft.markdown  # the writer copies the sentences as they are
    page = page_of(draft.markdown)
    assert page.count("<script") == 1  # only our JSON-LD block
    assert "<img" not in page
    assert not re.search(r"<[^>]*\sonerror", page)
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_raw_html_in_markdown_is_rendered_as_text_not_markup() -> None:
    html = render_html('Before <b onclick="x()">bold</b> and <img src=x onerror=alert(1)>')
    assert "<b" not in html
    assert "<img" not in html
    assert "&lt;b onclick=" in html


def test_external_images_lose_their_address_and_relative_ones_keep_it() -> None:
    html = render_html(
        "![pixel](https://tracker.example/p.gif) ![cdn](//cdn.example/x.png) "
        "![local](/media/chart.png) ![rel](chart.png)"
    )
    sources = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert sources == ["/media/chart.png", "chart.png"]
    assert "tracker.example" not in html
    assert "cdn.example" not in html
    assert 'alt="pixel"' in html  # the image stays as its alt text, inert
