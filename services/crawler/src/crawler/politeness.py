"""Politeness towards the sites we crawl: robots.txt (RFC 9309, via protego), a request rate
per host shared by every replica (token buckets in Redis), Crawl-delay, Retry-After holds
and a cap on concurrent requests per host (leased slots in Redis, so it holds across replicas;
in process without Redis)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from protego import Protego

from seoblog_runtime import Cache
from seoblog_runtime.ratelimit import TokenBucket

from .errors import FetchError
from .expiring import fresh_json
from .metrics import CrawlerMetrics

log = logging.getLogger("crawler.politeness")

# What fetching robots.txt can come to (RFC 9309, 2.3.1).
ROBOTS_OK = "ok"  # 2xx: obey it
ROBOTS_MISSING = "missing"  # 4xx: no rules, everything allowed
ROBOTS_UNREACHABLE = "unreachable"  # 5xx, 429 or no answer: assume everything disallowed

_PARSED_ORIGINS = 2048

# KEYS[1] the host's slots (a sorted set of lease tokens by expiry); ARGV: limit, lease
# seconds, token. Expired leases (a replica that died mid-request) are dropped first.
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
  return 1
end
return 0
"""

# A turn's whole Redis work in one round trip when nothing has to wait: no Retry-After hold,
# a free host slot, and a token in each bucket (the host's rate, then its Crawl-delay, with
# seoblog_runtime.ratelimit's arithmetic). All or nothing: when anything would wait, nothing
# is taken and the turn goes step by step. KEYS: slots, hold, buckets...; ARGV: limit, lease
# seconds, token, then rate and capacity per bucket.
_FAST_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local levels = {}
for i = 3, #KEYS do
  local rate = tonumber(ARGV[2 * i - 2])
  local capacity = tonumber(ARGV[2 * i - 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then return 0 end
  levels[i] = tokens
end
for i = 3, #KEYS do
  local rate = tonumber(ARGV[2 * i - 2])
  local capacity = tonumber(ARGV[2 * i - 1])
  redis.call('HSET', KEYS[i], 'tokens', levels[i] - 1, 'at', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(capacity / rate * 1000) + 1000)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""

RobotsSource = Callable[[str], Awaitable[tuple[str, str]]]


@dataclass(frozen=True)
class PolitenessRules:
    user_agent: str = "seoblog-crawler"
    host_rate_per_s: float = 1.0
    host_burst: float = 3.0
    host_concurrency: int = 2
    robots_ttl_s: float = 24 * 3600
    robots_unreachable_ttl_s: float = 300
    max_crawl_delay_s: float = 30.0
    max_wait_s: float = 60.0
    slot_lease_s: float = 120.0  # a replica that dies holding a host slot frees it after this


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`, lower-cased: robots.txt and rates are per origin."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc.rsplit('@', 1)[-1]).lower()}"


class Politeness:
    """Ask `visit(url)` before every request; it waits for the host's turn or refuses."""

    def __init__(
        self,
        cache: Cache,
        rules: PolitenessRules | None = None,
        metrics: CrawlerMetrics | None = None,
    ) -> None:
        self.cache = cache
        self.rules = rules or PolitenessRules()
        self.metrics = metrics or CrawlerMetrics()
        self._buckets: dict[tuple[float, float], TokenBucket] = {}
        # Parsed robots.txt per origin, so a busy host is not re-parsed for every request.
        self._parsed: OrderedDict[str, tuple[float, str, Protego | None]] = OrderedDict()
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}
        # Retry-After holds this process set (also when Redis could not take them).
        self._held_until: dict[str, float] = {}
        self._fast_turn: Any = None  # the script, on the cache's Redis client
        self._fast_turn_on: Any = None

    # -- robots.txt

    async def robots(self, origin: str, source: RobotsSource) -> tuple[str, Protego | None]:
        """The origin's robots.txt outcome and parsed rules, fetched once per TTL (across
        replicas, through the two-level cache)."""
        rules = self.rules
        if (known := self._parsed.get(origin)) is not None and known[0] > time.time():
            self._parsed.move_to_end(origin)
            return known[1], known[2]

        async def fetch() -> dict[str, Any]:
            outcome, body = await source(origin)
            self.metrics.robots_fetched.labels(outcome).inc()
            entry: dict[str, Any] = {"outcome": outcome, "body": body}
            if outcome == ROBOTS_UNREACHABLE:
                entry["ttl_s"] = rules.robots_unreachable_ttl_s
            return entry

        entry, _ = await fresh_json(self.cache, f"robots:v1:{origin}", rules.robots_ttl_s, fetch)
        outcome = str(entry["outcome"])
        parsed = Protego.parse(entry["body"]) if outcome == ROBOTS_OK else None
        self._parsed[origin] = (float(entry["expires_at"]), outcome, parsed)
        if len(self._parsed) > _PARSED_ORIGINS:
            self._parsed.popitem(last=False)
        return outcome, parsed

    async def check_robots(self, url: str, source: RobotsSource) -> float:
        """Raise robots_denied / robots_unavailable unless `url` may be fetched; returns the
        host's crawl delay in seconds (0 when it asks for none)."""
        origin = origin_of(url)
        outcome, parsed = await self.robots(origin, source)
        if outcome == ROBOTS_UNREACHABLE:
            self.metrics.robots_denied.labels("unreachable").inc()
            raise FetchError(
                "robots_unavailable",
                f"{origin}/robots.txt could not be read (server error or no answer), so the "
                "site may not be crawled for now",
                retryable=True,
            )
        if parsed is None:
            return 0.0
        agent = self.rules.user_agent
        if not parsed.can_fetch(url, agent):
            self.metrics.robots_denied.labels("disallowed").inc()
            raise FetchError("robots_denied", f"{origin}/robots.txt does not allow {url}")
        delay = float(parsed.crawl_delay(agent) or 0.0)
        if (rate := parsed.request_rate(agent)) is not None and rate.requests > 0:
            delay = max(delay, rate.seconds / rate.requests)
        return min(delay, self.rules.max_crawl_delay_s)

    # -- pace

    @asynccontextmanager
    async def turn(self, url: str, crawl_delay_s: float = 0.0) -> AsyncIterator[None]:
        """Hold one of the host's concurrent slots, after its rate, Crawl-delay and any
        Retry-After hold allow a request."""
        origin = origin_of(url)
        started = time.monotonic()
        slot = await self._enter(origin)
        try:
            lease = await self._turn_at_once(origin, crawl_delay_s)
            if lease is None:  # something may have to wait: step by step
                lease = await self._shared_slot(origin)
                self._observe_wait("concurrency", started)
                try:
                    await self._wait_for_hold(origin)
                    await self._take(
                        origin, self.rules.host_rate_per_s, self.rules.host_burst, "rate"
                    )
                    if crawl_delay_s > 0:
                        await self._take(origin, 1.0 / crawl_delay_s, 1.0, "crawl_delay")
                except BaseException:
                    await self._release_shared(origin, lease)
                    raise
            else:
                self._observe_wait("concurrency", started)
            try:
                yield
            finally:
                await self._release_shared(origin, lease)
        finally:
            self._leave(origin, slot)

    async def _turn_at_once(self, origin: str, crawl_delay_s: float) -> str | None:
        """The host's slot (a lease token), rate token and Crawl-delay token taken in one Redis
        round trip, when none of them has to wait; None (nothing taken) otherwise."""
        redis = self.cache.redis
        if redis is None or self._held_until.get(origin, 0.0) > time.time():
            return None
        if self._fast_turn_on is not redis:
            self._fast_turn, self._fast_turn_on = redis.register_script(_FAST_TURN), redis
        rules = self.rules
        buckets = [(rules.host_rate_per_s, rules.host_burst)]
        if crawl_delay_s > 0:
            buckets.append((1.0 / crawl_delay_s, 1.0))
        if any(rate <= 0 or burst < 1 for rate, burst in buckets):
            return None  # the step-by-step path says what is wrong
        token = secrets.token_hex(8)
        # The hold's key as the cache stores it (prefix:key), as _slots_key builds its own.
        keys = [self._slots_key(origin), f"{self.cache.prefix}:hold:v1:{origin}"]
        args: list[Any] = [rules.host_concurrency, rules.slot_lease_s, token]
        for rate, burst in buckets:
            keys.append(f"{self._bucket(rate, burst).prefix}:{origin}")
            args += [rate, burst]
        try:
            granted = await self._fast_turn(keys=keys, args=args)
        except Exception:  # Redis trouble: the step-by-step path copes (and logs)
            return None
        return token if int(granted) else None

    async def _shared_slot(self, origin: str) -> str | None:
        """One of the host's slots across replicas (a lease token), or None without Redis."""
        redis = self.cache.redis
        if redis is None:
            return None
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.rules.max_wait_s
        delay = 0.01
        while True:
            try:
                taken = await redis.eval(
                    _TAKE_SLOT,
                    1,
                    self._slots_key(origin),
                    self.rules.host_concurrency,
                    self.rules.slot_lease_s,
                    token,
                )
            except Exception:  # Redis down: the in-process cap still holds
                log.warning("redis host slots failed; capping in process only", exc_info=True)
                return None
            if int(taken):
                return token
            if time.monotonic() + delay > deadline:
                raise _too_long(origin, self.rules.max_wait_s)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _release_shared(self, origin: str, token: str | None) -> None:
        if token is None or self.cache.redis is None:
            return
        try:
            await self.cache.redis.zrem(self._slots_key(origin), token)
        except Exception:  # the lease expires by itself
            log.warning("redis host slot release failed", exc_info=True)

    def _slots_key(self, origin: str) -> str:
        return f"{self.cache.prefix}:host-slots:{origin}"

    async def hold(self, url: str, seconds: float) -> None:
        """No request to the host of `url` for `seconds` (its Retry-After), in any replica."""
        until = time.time() + seconds
        self._held_until[origin_of(url)] = until
        if len(self._held_until) > _PARSED_ORIGINS:
            now = time.time()
            self._held_until = {o: u for o, u in self._held_until.items() if u > now}
        await self.cache.set_json(f"hold:v1:{origin_of(url)}", until, ttl_s=seconds + 1)

    async def _wait_for_hold(self, origin: str) -> None:
        until = await self.cache.get_json(f"hold:v1:{origin}")
        wait = float(until) - time.time() if until is not None else 0.0
        if wait <= 0:
            return
        if wait > self.rules.max_wait_s:
            raise _too_long(origin, wait)
        self.metrics.host_wait.labels("retry_after").observe(wait)
        await asyncio.sleep(wait)

    async def _take(self, origin: str, rate: float, burst: float, reason: str) -> None:
        bucket = self._bucket(rate, burst)
        try:
            waited = await bucket.acquire(origin, timeout_s=self.rules.max_wait_s)
        except TimeoutError:
            raise _too_long(origin, self.rules.max_wait_s) from None
        if waited > 0:
            self.metrics.host_wait.labels(reason).observe(waited)

    def _bucket(self, rate: float, burst: float) -> TokenBucket:
        # Made on first use: the cache's Redis connection exists only once it is opened.
        key = (rate, burst)
        if (bucket := self._buckets.get(key)) is None:
            prefix = f"{self.cache.prefix}:host-rate:{rate:g}:{burst:g}"
            bucket = TokenBucket(prefix, rate, burst, redis=self.cache.redis)
            self._buckets[key] = bucket
        return bucket

    async def _enter(self, origin: str) -> asyncio.Semaphore:
        slot, users = self._slots.get(origin) or (
            asyncio.Semaphore(self.rules.host_concurrency),
            0,
        )
        self._slots[origin] = (slot, users + 1)
        try:
            await slot.acquire()
        except BaseException:
            self._release_user(origin, slot)
            raise
        return slot

    def _leave(self, origin: str, slot: asyncio.Semaphore) -> None:
        slot.release()
        self._release_user(origin, slot)

    def _release_user(self, origin: str, slot: asyncio.Semaphore) -> None:
        _, users = self._slots[origin]
        if users <= 1:
            del self._slots[origin]  # nobody waits: forget the host
        else:
            self._slots[origin] = (slot, users - 1)

    def _observe_wait(self, reason: str, started: float) -> None:
        waited = time.monotonic() - started
        if waited > 0.001:
            self.metrics.host_wait.labels(reason).observe(waited)


def _too_long(origin: str, seconds: float) -> FetchError:
    return FetchError(
        "rate_limited",
        f"{origin} asks us to wait {seconds:.0f} s before the next request; will retry later",
        retryable=True,
    )
