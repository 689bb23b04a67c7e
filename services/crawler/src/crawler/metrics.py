"""The crawler's Prometheus figures, registered on the service's registry (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_EXTRACT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class CrawlerMetrics:
    """Without a registry the figures are kept but not exported (unit tests, benchmarks)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.pages_fetched = Counter(
            "crawler_pages_fetched",
            "Pages fetched from the web, by HTTP status class",
            ["status"],
            registry=reg,
        )
        self.bytes_fetched = Counter(
            "crawler_bytes_fetched",
            "Page bytes received: on the wire, and after content decoding",
            ["kind"],
            registry=reg,
        )
        self.cache_hits = Counter(
            "crawler_page_cache_hits",
            "Jobs served from the page cache without fetching",
            registry=reg,
        )
        self.not_modified = Counter(
            "crawler_not_modified",
            "Re-crawls answered 304 Not Modified (the stored page reused)",
            registry=reg,
        )
        self.duplicates = Counter(
            "crawler_dedup_hits",
            "Pages recognised as the same as a stored page: exact (hash) or near (SimHash)",
            ["kind"],
            registry=reg,
        )
        self.failures = Counter(
            "crawler_failures", "Crawls that failed, by error code", ["code"], registry=reg
        )
        self.retries = Counter(
            "crawler_fetch_retries", "Fetch attempts retried, by error code", ["code"], registry=reg
        )
        self.robots_fetched = Counter(
            "crawler_robots_fetched", "robots.txt fetches by outcome", ["outcome"], registry=reg
        )
        self.robots_denied = Counter(
            "crawler_robots_denials",
            "Pages not fetched because of robots.txt",
            ["reason"],
            registry=reg,
        )
        self.host_wait = Histogram(
            "crawler_host_wait_seconds",
            "Time waited for a host's turn, by reason",
            ["reason"],
            buckets=_WAIT_BUCKETS,
            registry=reg,
        )
        self.extract_seconds = Histogram(
            "crawler_extraction_seconds",
            "Article extraction time per page (in the process pool)",
            buckets=_EXTRACT_BUCKETS,
            registry=reg,
        )
        self.slot_wait = Histogram(
            "crawler_priority_wait_seconds",
            "Time a job waited for a crawl slot, by priority",
            ["priority"],
            buckets=_WAIT_BUCKETS,
            registry=reg,
        )
