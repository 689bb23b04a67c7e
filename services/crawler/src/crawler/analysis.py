"""What the crawler's extraction processes run for a page: extraction plus its SimHash, timed.

The extractor is imported here only when a worker first needs it, so the service process,
which refers to these functions to send them to the workers, never loads trafilatura.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .article import Article
from .packing import pack
from .similarity import simhash


@dataclass(frozen=True)
class Analysis:
    """A page as the crawler keeps it; compressed here, off the service's event loop."""

    article: Article
    simhash: int  # of the article's text
    html_z: bytes
    text_z: bytes
    seconds: float  # spent extracting


def analyse_page(html: str, url: str | None = None) -> Analysis:
    """The article of `html`, its SimHash and both compressed (CPU-bound: run off the loop)."""
    from .extract import extract_article

    started = time.perf_counter()
    article = extract_article(html, url)
    seconds = time.perf_counter() - started
    return Analysis(article, simhash(article.text), pack(html), pack(article.text), seconds)


def warm_up_worker() -> None:
    """A worker's initializer: load and exercise the extractor before the first page comes."""
    from .extract import warm_up

    warm_up()
