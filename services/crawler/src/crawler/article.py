"""What extraction gives back. Nothing here imports the extractor: the service process reads
these from its extraction workers without loading trafilatura itself."""

from __future__ import annotations

from dataclasses import dataclass


class ExtractionError(Exception):
    """The HTML holds no article we can use; `code` is machine-readable, `message` is not."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[ExtractionError], tuple[str, str]]:
        # Extraction runs in a process pool: the error must survive pickling back.
        return (type(self), (self.code, self.message))


@dataclass(frozen=True)
class Article:
    title: str
    text: str
    author: str | None
    published: str | None
    site_name: str | None
    language: str | None
    canonical_url: str | None
    image: str | None
    links: list[str]
    content_hash: str
    word_count: int
