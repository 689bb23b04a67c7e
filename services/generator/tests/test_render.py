import json
import re

import pytest

from generator.render import json_ld, render_html, render_page, sanitize_html

LD_BLOCK = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.DOTALL)


def ld_objects(html: str) -> list[dict[str, object]]:
    return [json.loads(block) for block in LD_BLOCK.findall(html)]


def test_render_html_renders_commonmark_with_tables_and_code() -> None:
    html = render_html(
        "## Heading\n\nSome *emphasis* and `code`.\n\n"
        "| Tool | Price |\n|:-----|------:|\n| Crawler | 10 |\n\n"
        "```python\nprint('hi')\n```\n"
    )
    assert "<h2>Heading</h2>" in html
    assert "<em>emphasis</em>" in html
    assert '<th style="text-align:left">Tool</th>' in html
    assert '<td style="text-align:right">10</td>' in html
    assert '<code class="language-python">' in html


def test_sanitize_html_removes_script_elements_and_their_content() -> None:
    html = sanitize_html("Before\n\n<script>alert('x')</script>\n\nAfter <script>steal()</script>")
    assert "<script" not in html.lower()
    assert "alert" not in html
    assert "steal" not in html
    assert "Before" in html
    assert "After" in html


@pytest.mark.parametrize(
    "markdown",
    [
        '<img src="x.png" onerror="alert(1)">',
        '<a href="https://example.com" onclick="alert(1)">x</a>',
        '<div onmouseover="alert(1)">x</div>',
        "<svg onload=alert(1)><circle/></svg>",
        '<body onload="alert(1)">',
    ],
)
def test_sanitize_html_drops_every_event_handler_attribute(markdown: str) -> None:
    html = sanitize_html(markdown)
    assert not re.search(r"\son\w+\s*=", html)
    assert "alert" not in html


@pytest.mark.parametrize(
    "markdown",
    [
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">click</a>',
        '<a href="JaVaScRiPt:alert(1)">click</a>',
        '<a href="jav&#x61;script:alert(1)">click</a>',
        '<a href=" javascript:alert(1)">click</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
        "![pixel](data:image/png;base64,iVBORw0KGgo=)",
        '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
        '<a href="vbscript:msgbox(1)">click</a>',
    ],
)
def test_no_javascript_or_data_url_in_a_link_or_image(markdown: str) -> None:
    # Raw HTML is text in markdown now; the policy itself is checked on it directly.
    html = (sanitize_html(markdown) if markdown.startswith("<") else render_html(markdown)).lower()
    urls = re.findall(r"""(?:href|src)\s*=\s*["']?([^"'\s>]*)""", html)
    assert not [u for u in urls if re.match(r"\s*(javascript|data|vbscript):", u)]
    assert "<script" not in html


@pytest.mark.parametrize(
    "markdown",
    [
        '<iframe src="https://evil.example"></iframe>',
        "<style>body { display: none }</style>",
        '<object data="x.swf"></object>',
        '<embed src="x.swf">',
        '<form action="https://evil.example"><input name="q"></form>',
        '<meta http-equiv="refresh" content="0;url=https://evil.example">',
        '<link rel="stylesheet" href="https://evil.example/x.css">',
        '<base href="https://evil.example/">',
    ],
)
def test_sanitize_html_removes_embedding_and_styling_elements(markdown: str) -> None:
    html = sanitize_html(markdown).lower()
    for tag in (
        "<iframe",
        "<style",
        "<object",
        "<embed",
        "<form",
        "<input",
        "<meta",
        "<link",
        "<base",
    ):
        assert tag not in html
    assert "display: none" not in html


def test_render_html_adds_nofollow_noopener_noreferrer_to_links() -> None:
    html = render_html("[site](https://example.com/a?b=1&c=2) and <https://example.org>")
    links = re.findall(r"<a [^>]*>", html)
    assert len(links) == 2
    for link in links:
        assert 'rel="nofollow noopener noreferrer"' in link
    assert 'href="https://example.com/a?b=1&amp;c=2"' in html


def test_sanitize_html_keeps_only_safe_attributes() -> None:
    html = sanitize_html(
        '<p style="position:fixed" class="x" id="y">text</p>\n\n'
        '<code class="language-js evil">x</code>\n\n'
        '<table><tr><td style="text-align:center;color:red"><span style="color:red">b</span>'
        "</td></tr></table>"
    )
    assert "position" not in html
    assert 'class="x"' not in html
    assert 'id="y"' not in html
    assert "evil" not in html
    assert "color" not in html
    assert 'style="text-align:center"' in html


def test_sanitize_html_drops_comments_that_could_hide_conditional_markup() -> None:
    assert sanitize_html("<!--[if IE]><script>x()</script><![endif]-->ok") == "ok"


def test_json_ld_describes_the_article_and_the_faq() -> None:
    html = json_ld(
        title="Tuft cells",
        description="What tuft cells do.",
        url="https://example.com/tuft-cells",
        language="en",
        faq=[("What are tuft cells?", "Sentinel cells."), ("Where?", "In the gut.")],
        published="2026-01-02",
    )
    article, faq = ld_objects(html)
    assert article["@context"] == "https://schema.org"
    assert article["@type"] == "Article"
    assert article["headline"] == "Tuft cells"
    assert article["description"] == "What tuft cells do."
    assert article["inLanguage"] == "en"
    assert article["url"] == "https://example.com/tuft-cells"
    assert article["datePublished"] == "2026-01-02"
    assert faq["@type"] == "FAQPage"
    assert faq["mainEntity"] == [
        {
            "@type": "Question",
            "name": "What are tuft cells?",
            "acceptedAnswer": {"@type": "Answer", "text": "Sentinel cells."},
        },
        {
            "@type": "Question",
            "name": "Where?",
            "acceptedAnswer": {"@type": "Answer", "text": "In the gut."},
        },
    ]


def test_json_ld_has_only_the_article_block_without_faq_or_url() -> None:
    html = json_ld(title="T", description="D", url=None, language="de", faq=[])
    (article,) = ld_objects(html)
    assert "url" not in article
    assert "datePublished" not in article
    assert html.count("<script") == 1


def test_json_ld_cannot_be_broken_out_of() -> None:
    hostile = "</script><script>alert(1)</script><!-- & \u2028"
    html = json_ld(
        title=hostile,
        description=hostile,
        url="https://example.com/?q=</script>",
        language="en",
        faq=[(hostile, hostile)],
    )
    assert html.count("</script>") == 2
    assert html.count("<script") == 2
    assert "<!--" not in html
    assert "\u2028" not in html
    assert "\\u003c/script\\u003e" in html
    article, faq = ld_objects(html)
    assert article["headline"] == hostile
    assert article["url"] == "https://example.com/?q=</script>"
    assert faq["mainEntity"][0]["name"] == hostile  # type: ignore[index]


def test_json_ld_keeps_non_ascii_text_readable() -> None:
    html = json_ld(title="Straße & 東京", description="d", url=None, language="de", faq=[])
    assert "Straße \\u0026 東京" in html


def test_render_page_appends_our_json_ld_after_the_sanitised_body() -> None:
    markdown = (
        "## Title\n\nText.\n\n"
        '<script type="application/ld+json">{"@type": "Fake"}</script>\n\n'
        "<script>alert(1)</script>"
    )
    page = render_page(
        markdown,
        title="Real",
        description="Desc",
        url=None,
        language="en",
        faq=[("Q?", "A.")],
    )
    assert page.startswith("<h2>Title</h2>")
    assert page.count("<script") == 2  # ours; the post's raw HTML is shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert [obj["@type"] for obj in ld_objects(page)] == ["Article", "FAQPage"]
    assert page.index("<p>Text.</p>") < page.index("application/ld+json")
