"""Subject and stream names. A namespace prefixes all of them so tests (and tenants)
can share one NATS server without seeing each other's events."""

from __future__ import annotations

from dataclasses import dataclass

from .events import Event, JobSubmitted, Priority


@dataclass(frozen=True)
class Subjects:
    """Names for one namespace; the empty namespace gives the contract's names (`seo.>`, `SEO`)."""

    namespace: str = ""

    @property
    def root(self) -> str:
        return f"{self.namespace}.seo" if self.namespace else "seo"

    @property
    def stream(self) -> str:
        return f"{self.namespace.upper()}_SEO" if self.namespace else "SEO"

    @property
    def dlq_stream(self) -> str:
        return f"{self.stream}_DLQ"

    @property
    def all(self) -> str:
        return f"{self.root}.>"

    @property
    def dlq_all(self) -> str:
        return f"{self.root}.dlq.>"

    def of(self, event: Event | type[Event]) -> str:
        """The subject an event is published on (submitted jobs carry their priority)."""
        if isinstance(event, JobSubmitted):
            return self.submitted(event.spec.priority)
        return f"{self.root}.{event.subject_suffix}"

    def submitted(self, priority: Priority | str) -> str:
        return f"{self.root}.job.submitted.{Priority(priority).value}"

    @property
    def submitted_any(self) -> str:
        return f"{self.root}.job.submitted.*"

    def dlq(self, subject: str) -> str:
        """Dead-letter subject for a message that came in on `subject`."""
        return f"{self.root}.dlq.{subject.removeprefix(self.root + '.')}"

    def stream_subjects(self) -> list[str]:
        # The main stream must not capture dead letters, which have their own stream.
        return [
            f"{self.root}.{token}.>"
            for token in ("job", "page", "text", "post", "alert", "experiment")
        ]
