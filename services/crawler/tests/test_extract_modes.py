"""The extraction code paths an experiment variant may choose (`crawler.extract_mode`), and the
page cache keeping each mode's pages apart."""

from __future__ import annotations

import gzip
from pathlib import Path

from crawler.extract import extract_article
from crawler.handlers import page_key

PAGE = (
    Path(__file__).resolve().parents[3].parent
    / "shared/fixtures/extraction/html"
    / "08f793762792bd252c75fb57544cdf506ffcc04785136cb87503f02364b82b56.html.gz"
)


def test_recall_mode_keeps_more_of_a_page_than_precision_and_default_is_unchanged():
    html = gzip.decompress(PAGE.read_bytes()).decode("utf-8", "replace")
    default = extract_article(html, "https://example.com/a")
    precision = extract_article(html, "https://example.com/a", "precision")
    recall = extract_article(html, "https://example.com/a", "recall")
    assert default == extract_article(html, "https://example.com/a", "default")
    assert precision.word_count == default.word_count
    assert recall.word_count > precision.word_count


def test_each_extraction_mode_has_its_own_page_cache_key():
    url = "https://example.com/a"
    assert page_key(url) == "page:v2:https://example.com/a"  # unchanged outside experiments
    assert len({page_key(url), page_key(url, "precision"), page_key(url, "recall")}) == 3
