"""What the crawler's extraction processes run for a page: extraction plus its SimHash, timed.

The extractor is imported here only when a worker first needs it, so the service process,
which refers to these functions to send them to the workers, never loads trafilatura.
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass

from .article import Article
from .decoding import decode_html
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


def analyse_page(
    html: str | bytes, url: str | None = None, mode: str = "default", charset: str | None = None
) -> Analysis:
    """The article of `html`, its SimHash and both compressed (CPU-bound: run off the loop);
    `mode` is the extraction code path (extract.ExtractMode). `html` may be the page's bytes
    as fetched, with the HTTP `charset`: decoded here (decoding.decode_html), not on the
    service's event loop, and bytes cross the process boundary cheaper than text."""
    from .extract import extract_article

    if isinstance(html, bytes):
        html = decode_html(html, charset)
    started = time.perf_counter()
    article = extract_article(html, url, mode)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return Analysis(article, simhash(article.text), pack(html), pack(article.text), seconds)


def start_worker(service_pid: int) -> None:
    """A worker's initializer: leave with the service process, and load and exercise the
    extractor before the first page comes."""
    threading.Thread(
        target=_exit_with, args=(service_pid,), name="exit-with-service", daemon=True
    ).start()
    warm_up_worker()


def warm_up_worker() -> None:
    from .extract import warm_up

    warm_up()


def _exit_with(pid: int) -> None:
    """Exit when process `pid` does. A service killed with SIGKILL cannot stop its pool, and
    its workers (holding the forkserver, which holds their queues) would otherwise stay."""
    try:
        watch = os.pidfd_open(pid)  # Linux 5.3+: readable once the process has exited
    except (AttributeError, OSError):
        watch = None
    if watch is not None:
        select.select([watch], [], [])
    else:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:  # alive, someone else's: cannot happen for our parent
                continue
    os._exit(0)
