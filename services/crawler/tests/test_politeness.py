"""robots.txt (RFC 9309 through protego), Crawl-delay, per-host rate shared through Redis and
per-host concurrency, against a local site of the test's own."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from crawler.addresses import AddressPolicy
from crawler.fetch import Fetcher, FetchError, FetchLimits
from crawler.metrics import CrawlerMetrics
from crawler.politeness import Politeness, PolitenessRules, origin_of
from seoblog_runtime import Cache
from seoblog_testing.plugin import unique_name
from seoblog_testing.site import FixtureSite

PAGE = "<!doctype html><html><head><title>Polite</title></head><body><p>Hi</p></body></html>"
LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])
FAST = PolitenessRules(host_rate_per_s=1000, host_burst=100, host_concurrency=8)


@pytest.fixture
async def make_cache(infra: Any) -> AsyncIterator[Callable[[str], Any]]:
    opened: list[Cache] = []

    async def make(prefix: str) -> Cache:
        cache = Cache(prefix, infra.redis_url)
        await cache.open()
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        await cache.close()


@pytest.fixture
async def cache(make_cache: Callable[[str], Any]) -> Cache:
    cache: Cache = await make_cache(unique_name("polite"))
    return cache


def fetcher(
    cache: Cache, rules: PolitenessRules = FAST, metrics: CrawlerMetrics | None = None
) -> Fetcher:
    politeness = Politeness(cache, rules, metrics)
    return Fetcher(FetchLimits(attempts=1, timeout_s=3), policy=LOOPBACK, politeness=politeness)


async def test_robots_txt_disallow_fails_with_robots_denied(
    own_site: FixtureSite, cache: Cache
) -> None:
    own_site.route(
        "/robots.txt",
        body="User-agent: *\nAllow: /\n\nUser-agent: seoblog-crawler\nDisallow: /private/\n",
        headers={"content-type": "text/plain"},
    )
    own_site.route("/private/page", body=PAGE)
    metrics = CrawlerMetrics()

    async with fetcher(cache, metrics=metrics) as f:
        with pytest.raises(FetchError) as caught:
            await f.fetch(own_site.url("/private/page"))

    assert (caught.value.code, caught.value.retryable) == ("robots_denied", False)
    assert own_site.hits("/private/page") == 0
    assert metrics.robots_denied.labels("disallowed")._value.get() == 1


async def test_robots_txt_is_fetched_once_per_host_and_shared_through_the_cache(
    own_site: FixtureSite, make_cache: Callable[[str], Any]
) -> None:
    own_site.route("/robots.txt", body="User-agent: *\nDisallow: /nope\n")
    own_site.route("/a", body=PAGE)
    own_site.route("/b", body=PAGE)
    prefix = unique_name("shared")

    async with (
        fetcher(await make_cache(prefix)) as first,
        fetcher(await make_cache(prefix)) as second,
    ):
        await asyncio.gather(first.fetch(own_site.url("/a")), second.fetch(own_site.url("/b")))
        await first.fetch(own_site.url("/b"))

    assert own_site.hits("/robots.txt") == 1
    assert own_site.hits("/a") == 1
    assert own_site.hits("/b") == 2


@pytest.mark.parametrize("status", [404, 410, 401, 403])
async def test_robots_txt_4xx_means_everything_is_allowed(
    own_site: FixtureSite, cache: Cache, status: int
) -> None:
    own_site.route("/robots.txt", status=status, body="nope")
    own_site.route("/page", body=PAGE)

    async with fetcher(cache) as f:
        page = await f.fetch(own_site.url("/page"))

    assert page.html == PAGE


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_robots_txt_5xx_means_stay_away_for_now(
    own_site: FixtureSite, cache: Cache, status: int
) -> None:
    own_site.route("/robots.txt", status=status, body="down")
    own_site.route("/page", body=PAGE)

    async with fetcher(cache) as f:
        with pytest.raises(FetchError) as caught:
            await f.fetch(own_site.url("/page"))

    assert (caught.value.code, caught.value.retryable) == ("robots_unavailable", True)
    assert own_site.hits("/page") == 0


async def test_unreachable_robots_txt_is_asked_again_after_its_short_ttl(
    own_site: FixtureSite, cache: Cache
) -> None:
    own_site.route_sequence("/robots.txt", [{"status": 503}, {"body": "User-agent: *\nAllow: /"}])
    own_site.route("/page", body=PAGE)
    rules = PolitenessRules(host_rate_per_s=1000, host_burst=100, robots_unreachable_ttl_s=0)

    async with fetcher(cache, rules) as f:
        with pytest.raises(FetchError):
            await f.fetch(own_site.url("/page"))
        page = await f.fetch(own_site.url("/page"))

    assert page.html == PAGE
    assert own_site.hits("/robots.txt") == 2


async def test_robots_txt_redirect_is_followed(own_site: FixtureSite, cache: Cache) -> None:
    own_site.redirect_chain("/robots.txt", hops=2, final="/real-robots.txt")
    own_site.route("/real-robots.txt", body="User-agent: *\nDisallow: /\n")

    async with fetcher(cache) as f:
        with pytest.raises(FetchError) as caught:
            await f.fetch(own_site.url("/page"))

    assert caught.value.code == "robots_denied"


async def test_redirect_to_a_disallowed_page_is_refused_at_that_hop(
    own_site: FixtureSite, cache: Cache
) -> None:
    own_site.route("/robots.txt", body="User-agent: *\nDisallow: /members/\n")
    own_site.redirect_chain("/open", hops=1, final="/members/only")
    own_site.route("/members/only", body=PAGE)

    async with fetcher(cache) as f:
        with pytest.raises(FetchError) as caught:
            await f.fetch(own_site.url("/open"))

    assert caught.value.code == "robots_denied"
    assert own_site.hits("/members/only") == 0


async def test_crawl_delay_paces_requests_to_the_host(own_site: FixtureSite, cache: Cache) -> None:
    own_site.route("/robots.txt", body="User-agent: *\nCrawl-delay: 0.5\n")
    own_site.route("/page", body=PAGE)
    metrics = CrawlerMetrics()

    async with fetcher(cache, metrics=metrics) as f:
        for _ in range(3):
            await f.fetch(own_site.url("/page"))

    assert own_site.hits("/page") == 3
    waits = metrics.host_wait.labels("crawl_delay")
    assert waits._sum.get() > 0  # the 2nd and 3rd request waited for the delay


async def test_host_rate_is_shared_by_replicas_through_redis(
    own_site: FixtureSite, make_cache: Callable[[str], Any]
) -> None:
    own_site.route("/page", body=PAGE)
    prefix = unique_name("rate")
    strict = PolitenessRules(host_rate_per_s=0.01, host_burst=1, max_wait_s=0.1)
    one = Politeness(await make_cache(prefix), strict)
    other = Politeness(await make_cache(prefix), strict)

    async with one.turn(own_site.url("/page")):
        pass
    with pytest.raises(FetchError) as caught:
        async with other.turn(own_site.url("/page")):
            pass

    assert (caught.value.code, caught.value.retryable) == ("rate_limited", True)


async def test_concurrent_requests_to_one_host_are_capped(
    own_site: FixtureSite, cache: Cache
) -> None:
    in_flight = 0
    peak = 0

    async def slow(request: Request) -> Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.1)
        in_flight -= 1
        return Response(PAGE, media_type="text/html")

    own_site.route_handler("/slow", slow)
    rules = PolitenessRules(host_rate_per_s=1000, host_burst=100, host_concurrency=2)

    async with fetcher(cache, rules) as f:
        await asyncio.gather(*(f.fetch(own_site.url("/slow")) for _ in range(6)))

    assert own_site.hits("/slow") == 6
    assert peak == 2


async def test_retry_after_holds_the_host_for_other_requests(
    own_site: FixtureSite, cache: Cache
) -> None:
    own_site.route("/busy", status=503, headers={"retry-after": "3600"})
    metrics = CrawlerMetrics()
    rules = PolitenessRules(host_rate_per_s=1000, host_burst=100, max_wait_s=5)

    async with fetcher(cache, rules, metrics) as f:
        with pytest.raises(FetchError):
            await f.fetch(own_site.url("/busy"))
        with pytest.raises(FetchError) as caught:
            await f.fetch(own_site.url("/other"))

    assert caught.value.code == "rate_limited"
    assert own_site.hits("/other") == 0


def test_origin_is_scheme_host_and_port_lower_cased() -> None:
    assert origin_of("HTTP://User@Example.COM:8080/a?b") == "http://example.com:8080"


async def test_concurrency_per_host_is_capped_across_replicas_through_redis(
    own_site: FixtureSite, make_cache: Callable[[str], Any]
) -> None:
    in_flight = 0
    peak = 0

    async def slow(request: Request) -> Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return Response(PAGE, media_type="text/html")

    own_site.route_handler("/shared-slow", slow)
    prefix = unique_name("slots")
    rules = PolitenessRules(host_rate_per_s=1000, host_burst=100, host_concurrency=1)
    url = own_site.url("/shared-slow")

    async with (
        fetcher(await make_cache(prefix), rules) as one,
        fetcher(await make_cache(prefix), rules) as other,
    ):
        await asyncio.gather(*(f.fetch(url) for f in [one, other] * 3))

    assert own_site.hits("/shared-slow") == 6
    assert peak == 1


async def test_a_turn_nothing_waits_for_takes_the_slot_and_a_token_of_each_bucket(
    own_site: FixtureSite, cache: Cache
) -> None:
    assert cache.redis is not None
    url = own_site.url("/page")
    origin = origin_of(url)
    politeness = Politeness(cache, FAST)
    slots = f"{cache.prefix}:host-slots:{origin}"
    rate = f"{cache.prefix}:host-rate:1000:100:{origin}"
    delay = f"{cache.prefix}:host-rate:2:1:{origin}"

    async with politeness.turn(url, crawl_delay_s=0.5):
        leased = await cache.redis.zcard(slots)
        rate_left = float(await cache.redis.hget(rate, "tokens"))
        delay_left = float(await cache.redis.hget(delay, "tokens"))

    assert leased == 1
    assert 99 <= rate_left < 99.5  # one of 100, refilled by at most a few ms
    assert delay_left < 0.1  # the one Crawl-delay token
    assert await cache.redis.zcard(slots) == 0


async def test_a_hold_set_by_another_replica_stops_the_next_turn(
    own_site: FixtureSite, make_cache: Callable[[str], Any]
) -> None:
    prefix = unique_name("hold")
    rules = PolitenessRules(host_rate_per_s=1000, host_burst=100, max_wait_s=1)
    one = Politeness(await make_cache(prefix), rules)
    other = Politeness(await make_cache(prefix), rules)
    url = own_site.url("/page")

    await one.hold(url, 3600)
    with pytest.raises(FetchError) as caught:
        async with other.turn(url):
            pass

    assert caught.value.code == "rate_limited"
    rate = f"{prefix}:host-rate:1000:100:{origin_of(url)}"
    assert await other.cache.redis.exists(rate) == 0  # type: ignore[union-attr]
    assert await other.cache.redis.zcard(f"{prefix}:host-slots:{origin_of(url)}") == 0  # type: ignore[union-attr]


async def test_a_busy_host_slot_is_waited_for_without_taking_a_rate_token(
    own_site: FixtureSite, make_cache: Callable[[str], Any]
) -> None:
    prefix = unique_name("busy")
    rules = PolitenessRules(host_rate_per_s=1000, host_burst=100, host_concurrency=1)
    one = Politeness(await make_cache(prefix), rules)
    other = Politeness(await make_cache(prefix), rules)
    url = own_site.url("/page")
    rate = f"{prefix}:host-rate:1000:100:{origin_of(url)}"

    second = other.turn(url)
    async with one.turn(url):
        waiting = asyncio.create_task(second.__aenter__())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the one slot is the first replica's
        left = float(await one.cache.redis.hget(rate, "tokens"))  # type: ignore[union-attr]
    await asyncio.wait_for(waiting, 2)
    await second.__aexit__(None, None, None)

    assert 99 <= left < 99.5  # only the first turn's token was taken while the other waited
