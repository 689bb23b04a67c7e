"""The extraction baseline: one plain `trafilatura.extract` pass (parse and extract once), in
extraction_score.py's extractor signature."""

from __future__ import annotations

import trafilatura


def extract(html: str, url: str | None = None) -> str | None:
    result: str | None = trafilatura.extract(html, url=url)
    return result
