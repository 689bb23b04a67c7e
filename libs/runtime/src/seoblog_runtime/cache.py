"""Two-level cache: an in-process LRU with TTL in front of Redis, with single flight so
concurrent identical work runs once per process and once across replicas."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from cachetools import TTLCache

log = logging.getLogger("seoblog.cache")

# Deletes the lock only if we still hold it, so a slow holder never frees someone else's lock.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)

# A miss's first round trip: the value if another replica stored it, else our lock if it is
# free ({1, value} | {2} | {0}). Saves the separate GET, SET NX and second GET.
_CLAIM = """
local v = redis.call('get', KEYS[1])
if v then return {1, v} end
if redis.call('set', KEYS[2], ARGV[1], 'nx', 'px', ARGV[2]) then return {2} end
return {0}
"""

# A computed value stored and our lock released in one round trip.
_PUBLISH = """
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
if redis.call('get', KEYS[2]) == ARGV[3] then redis.call('del', KEYS[2]) end
return 1
"""

_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


class Cache:
    """Bytes in, bytes out; keys are namespaced by `prefix`. Redis is optional."""

    def __init__(
        self,
        prefix: str,
        redis_url: str | None = None,
        *,
        local_items: int = 1024,
        local_ttl_s: float = 300,
        default_ttl_s: float = 3600,
        # Short, and renewed every third of it by the live holder: a killed holder's lock
        # lapses within this, so waiters in other replicas stall at most this long.
        lock_ttl_s: float = 10,
    ) -> None:
        self.prefix = prefix
        self.redis_url = redis_url
        self.default_ttl_s = default_ttl_s
        self.lock_ttl_s = lock_ttl_s
        self._local: TTLCache[str, bytes] = TTLCache(maxsize=local_items, ttl=local_ttl_s)
        self._flights: dict[str, asyncio.Future[bytes]] = {}
        self.redis: aioredis.Redis | None = None
        self._claim: Any = None  # redis-py Script objects (EVALSHA, loaded on first use)
        self._publish: Any = None
        self.stats = {"local_hits": 0, "remote_hits": 0, "misses": 0, "coalesced": 0}

    async def open(self) -> None:
        if self.redis_url:
            self.redis = aioredis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
            self._claim = self.redis.register_script(_CLAIM)
            self._publish = self.redis.register_script(_PUBLISH)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    async def ping(self) -> bool:
        if self.redis is None:
            return True
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def get(self, key: str) -> bytes | None:
        full = self._key(key)
        if (value := self._local.get(full)) is not None:
            self.stats["local_hits"] += 1
            return value
        if self.redis is not None:
            try:
                remote = await self.redis.get(full)
            except Exception:  # Redis down: the in-process level keeps serving.
                log.warning("redis get failed; using the in-process cache only", exc_info=True)
                remote = None
            if remote is not None:
                found = remote.encode() if isinstance(remote, str) else bytes(remote)
                self.stats["remote_hits"] += 1
                self._local[full] = found
                return found
        self.stats["misses"] += 1
        return None

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        full = self._key(key)
        self._local[full] = value
        if self.redis is not None:
            try:
                await self.redis.set(full, value, px=int((ttl_s or self.default_ttl_s) * 1000))
            except Exception:
                log.warning("redis set failed", exc_info=True)

    async def delete(self, key: str) -> None:
        full = self._key(key)
        self._local.pop(full, None)
        if self.redis is not None:
            try:
                await self.redis.delete(full)
            except Exception:
                log.warning("redis delete failed", exc_info=True)

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[bytes]], ttl_s: float | None = None
    ) -> bytes:
        """The cached value, or compute it once: concurrent callers here and in other
        replicas wait for the one computation instead of repeating it."""
        full = self._key(key)
        if (value := self._local.get(full)) is not None:
            self.stats["local_hits"] += 1
            return value
        if (flight := self._flights.get(key)) is not None:
            self.stats["coalesced"] += 1
            return await asyncio.shield(flight)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        try:
            value = await self._compute_across_replicas(key, compute, ttl_s)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            future.set_result(value)
            return value
        finally:
            self._flights.pop(key, None)

    async def _compute_across_replicas(
        self, key: str, compute: Callable[[], Awaitable[bytes]], ttl_s: float | None
    ) -> bytes:
        """Two Redis round trips for a miss: claim (the stored value, or the lock), then the
        value stored with the lock released."""
        full = self._key(key)
        if self.redis is None:
            self.stats["misses"] += 1
            value = await compute()
            self._local[full] = value
            return value
        lock_key = self._key(f"lock:{key}")
        token = secrets.token_hex(8)
        lock_px = int(self.lock_ttl_s * 1000)
        delay = 0.02
        lock_errors = 0
        while True:
            try:
                claimed = await self._claim(keys=[full, lock_key], args=[token, lock_px])
            except Exception:
                # One slow answer is no reason to give up coordination; Redis being down is.
                lock_errors += 1
                if lock_errors < 3:
                    await asyncio.sleep(0.05 * lock_errors)
                    continue
                log.warning("redis lock failed; computing without coordination", exc_info=True)
                claimed, token = [2], ""
            if claimed[0] == 1:  # stored, by another replica or just now by the lock holder
                found = claimed[1].encode() if isinstance(claimed[1], str) else bytes(claimed[1])
                self.stats["remote_hits"] += 1
                self._local[full] = found
                return found
            if claimed[0] == 2:
                break
            # Another replica is computing and renewing its lock: wait for its value. If it
            # dies, its lock lapses within lock_ttl_s and the next claim above takes over.
            self.stats["coalesced"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        self.stats["misses"] += 1
        renew = asyncio.create_task(self._hold(lock_key, token)) if token else None
        released = False
        try:
            value = await compute()
            self._local[full] = value
            if token:
                try:
                    await self._publish(
                        keys=[full, lock_key],
                        args=[value, int((ttl_s or self.default_ttl_s) * 1000), token],
                    )
                    released = True
                except Exception:
                    log.warning("redis set failed", exc_info=True)
            else:
                await self.set(key, value, ttl_s)
            return value
        finally:
            if renew is not None:
                renew.cancel()
            if token and not released:
                try:
                    await self.redis.eval(_RELEASE, 1, lock_key, token)
                except Exception:
                    log.warning("redis unlock failed", exc_info=True)

    async def _hold(self, lock_key: str, token: str) -> None:
        """Keep our lock alive while the computation runs (a Batch API wait can take hours),
        so other replicas keep waiting instead of repeating the work."""
        assert self.redis is not None
        while True:
            await asyncio.sleep(self.lock_ttl_s / 3)
            try:
                await self.redis.eval(_RENEW, 1, lock_key, token, int(self.lock_ttl_s * 1000))
            except Exception:
                log.warning("redis lock renewal failed", exc_info=True)

    async def get_json(self, key: str) -> Any:
        raw = await self.get(key)
        return None if raw is None else json.loads(raw)

    async def set_json(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        await self.set(key, json.dumps(value).encode(), ttl_s)
