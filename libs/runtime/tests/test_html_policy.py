"""The shared HTML policy: a page the generator made passes the gateway's second sanitising
unchanged; what is not ours (scripts, handlers, external images, fake JSON-LD) does not."""

from __future__ import annotations

import json

from seoblog_runtime.html_policy import sanitize_html, sanitize_page, script_json

BODY = (
    "<h2>Heading</h2>\n<p>Some <em>text</em> with "
    '<a href="https://example.com" rel="nofollow noopener noreferrer">a link</a>'
    " and <code>code</code>.</p>\n"
    '<table>\n<thead>\n<tr>\n<th style="text-align:left">a</th>\n</tr>\n</thead>\n'
    '<tbody>\n<tr>\n<td style="text-align:left">1</td>\n</tr>\n</tbody>\n</table>\n'
)
LD = [
    {"@type": "Article", "headline": "T </script><script>x()</script>", "d": "\u2028 & <b>"},
    {"@type": "FAQPage", "mainEntity": []},
]


def generator_page() -> str:
    return f"{sanitize_html(BODY)}\n" + "\n".join(script_json(o) for o in LD) + "\n"


def test_a_clean_page_comes_out_of_the_second_sanitising_unchanged() -> None:
    page = generator_page()
    assert sanitize_page(page) == page


def test_the_json_ld_blocks_survive_and_still_parse_to_the_same_data() -> None:
    page = sanitize_page(generator_page())
    blocks = page.split('<script type="application/ld+json">')[1:]
    assert [json.loads(b.split("</script>")[0]) for b in blocks] == LD


def test_scripts_handlers_and_a_json_ld_block_that_is_not_json_are_removed() -> None:
    page = sanitize_page(
        '<p onclick="x()">hi<script>steal()</script></p><img src="//evil.example/p.gif">\n'
        '<script type="application/ld+json">alert(1)</script>\n'
    )
    assert page == "<p>hi</p><img>\n"


def test_a_script_disguised_as_json_ld_in_the_middle_of_the_body_is_removed() -> None:
    page = sanitize_page(
        '<p>a</p><script type="application/ld+json">{"a": 1}</script><script>x()</script>'
    )
    assert "<script" not in page
    assert "x()" not in page


def test_images_keep_only_relative_addresses() -> None:
    html = sanitize_html(
        '<img src="https://t.example/p.gif" alt="a"><img src="HTTP://t.example/q">'
        '<img src="\\\\t.example/r"><img src="data:image/png;base64,AAAA">'
        '<img src="/media/x.png" alt="b"><img src="y.png">'
    )
    assert "t.example" not in html
    assert "data:" not in html
    assert '<img src="/media/x.png" alt="b">' in html
    assert '<img src="y.png">' in html
