"""What the crawler's extraction processes run for a page: extraction plus its SimHash, timed.

The extractor is imported here only when a worker first needs it, so the service process,
which refers to these functions to send them to the workers, never loads trafilatura.
"""

from __future__ import annotations

import time

from .article import Article
from .similarity import simhash


def analyse_page(html: str, url: str | None = None) -> tuple[Article, int, float]:
    """The article, its text's SimHash and the seconds spent (CPU-bound: run off the loop)."""
    from .extract import extract_article

    started = time.perf_counter()
    article = extract_article(html, url)
    return article, simhash(article.text), time.perf_counter() - started


def warm_up_worker() -> None:
    """A worker's initializer: load and exercise the extractor before the first page comes."""
    from .extract import warm_up

    warm_up()
