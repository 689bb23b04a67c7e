"""Token buckets shared across replicas through Redis (one atomic script per take), or held in
process when there is no Redis. Used for per-host crawl rates, LLM request/token budgets and
per-API-key limits."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

log = logging.getLogger("seoblog.ratelimit")

# KEYS[1] bucket; ARGV: rate per second, capacity, tokens wanted. Uses the server's clock so
# replicas with skewed clocks agree. Returns {allowed (0/1), seconds until enough tokens}.
_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= wanted then
  tokens = tokens - wanted
  allowed = 1
else
  wait = (wanted - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


class RateLimitTimeout(TimeoutError):
    """The budget will not be there within the caller's wait: try later."""


class TokenBucket:
    """`rate_per_s` tokens a second up to `capacity`; one bucket per key."""

    def __init__(
        self,
        prefix: str,
        rate_per_s: float,
        capacity: float,
        redis: aioredis.Redis | None = None,
    ) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.prefix = prefix
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.redis = redis
        self._local: dict[str, tuple[float, float]] = {}
        self._lock = asyncio.Lock()

    async def take(self, key: str = "", tokens: float = 1.0) -> Decision:
        """Take `tokens` now if there are enough; otherwise say how long until there are."""
        if tokens > self.capacity:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self.capacity}")
        if self.redis is not None:
            try:
                allowed, wait = await self.redis.eval(
                    _TAKE, 1, f"{self.prefix}:{key}", self.rate_per_s, self.capacity, tokens
                )
                return Decision(bool(int(allowed)), float(wait))
            except Exception:  # Redis down: keep limiting, per process
                log.warning("redis token bucket failed; limiting in process", exc_info=True)
        return await self._take_local(key, tokens)

    async def _take_local(self, key: str, tokens: float) -> Decision:
        async with self._lock:
            now = time.monotonic()
            level, at = self._local.get(key, (self.capacity, now))
            level = min(self.capacity, level + (now - at) * self.rate_per_s)
            if level >= tokens:
                self._local[key] = (level - tokens, now)
                return Decision(True, 0.0)
            self._local[key] = (level, now)
            return Decision(False, (tokens - level) / self.rate_per_s)

    async def acquire(
        self, key: str = "", tokens: float = 1.0, timeout_s: float | None = None
    ) -> float:
        """Wait until `tokens` can be taken; returns the seconds waited. Raises TimeoutError
        if that would take longer than `timeout_s`."""
        waited = 0.0
        while True:
            decision = await self.take(key, tokens)
            if decision.allowed:
                return waited
            if timeout_s is not None and waited + decision.retry_after_s > timeout_s:
                raise RateLimitTimeout(
                    f"rate limit {self.prefix}:{key} needs {decision.retry_after_s:.2f}s"
                )
            pause = max(decision.retry_after_s, 0.005)
            await asyncio.sleep(pause)
            waited += pause
