"""What the crawler's process pool runs for a page: extraction plus its SimHash, timed."""

from __future__ import annotations

import time

from .extract import Article, extract_article
from .similarity import simhash


def analyse_page(html: str, url: str | None = None) -> tuple[Article, int, float]:
    """The article, its text's SimHash and the seconds spent (CPU-bound: run off the loop)."""
    started = time.perf_counter()
    article = extract_article(html, url)
    return article, simhash(article.text), time.perf_counter() - started
