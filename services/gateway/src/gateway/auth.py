"""API keys and scopes: keys are `sk_seo_` + 43 random characters, only their sha256 is stored;
each request names its key (Bearer or X-API-Key) and spends a token of that key's bucket."""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from seoblog_runtime.ratelimit import Decision, TokenBucket

from .errors import ApiError
from .settings import Settings
from .store import PgJobStore

KEY_PREFIX = "sk_seo_"
SCOPES = ("jobs:write", "jobs:read", "admin")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hint_of(key: str) -> str:
    return f"{key[: len(KEY_PREFIX) + 3]}…{key[-3:]}"


@dataclass(frozen=True)
class Principal:
    """Who is calling. `key_id` None means open mode (no keys, every scope)."""

    key_id: str | None
    scopes: frozenset[str]
    rate_per_s: float | None = None
    burst: int | None = None

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def sees_all(self) -> bool:
        """Admins and open mode see every job; a key sees the jobs it submitted."""
        return self.key_id is None or self.admin

    @property
    def owner_filter(self) -> str | None:
        return None if self.sees_all else self.key_id

    def can(self, scope: str) -> bool:
        return self.admin or scope in self.scopes

    def may_see(self, owner: str | None) -> bool:
        return self.sees_all or owner == self.key_id


OPEN = Principal(None, frozenset(SCOPES))


class Authenticator:
    """Key lookups (cached for a few seconds, so revocation reaches every replica in that
    time) and per-key token buckets in Redis.

    A replica takes a key's tokens from Redis a few at a time (at most a tenth of the burst,
    and what the rate refills in LEASE_S) and spends them locally, so most requests skip the
    Redis round trip; leased tokens left unspent lapse after LEASE_S, which can only make
    the limit stricter, never looser."""

    LEASE_S = 0.5

    def __init__(self, settings: Settings, store: PgJobStore, cache_ttl_s: float = 5.0) -> None:
        self.settings = settings
        self.store = store
        self._keys: TTLCache[str, Principal | None] = TTLCache(maxsize=10_000, ttl=cache_ttl_s)
        self._buckets: dict[tuple[float, int], TokenBucket] = {}
        # key id: (tokens left, lapses at); bounded, whatever the number of keys
        self._leases: TTLCache[str, tuple[int, float]] = TTLCache(10_000, ttl=self.LEASE_S)
        self._refills: dict[str, asyncio.Future[None]] = {}
        self.redis: Any = None
        self.prefix = ""

    async def start(self, redis: Any, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        if self.settings.admin_key is not None:
            key = self.settings.admin_key.get_secret_value()
            if key:
                await self.store.put_bootstrap_key(hash_key(key), hint_of(key))

    def forget(self) -> None:
        self._keys.clear()

    async def principal(self, key: str | None) -> Principal:
        if not key:
            if self.settings.open_mode:
                return OPEN
            raise ApiError(
                401,
                "missing_api_key",
                "Send an API key as `Authorization: Bearer sk_seo_...` or `X-API-Key`.",
                **{"WWW-Authenticate": "Bearer"},
            )
        digest = hash_key(key)
        if digest in self._keys:
            found = self._keys[digest]
        else:
            row = await self.store.key_by_hash(digest)
            found = (
                None
                if row is None
                else Principal(
                    row["key_id"], frozenset(row["scopes"]), row["rate_per_s"], row["burst"]
                )
            )
            self._keys[digest] = found
        if found is None:
            if self.settings.open_mode:
                return OPEN
            raise ApiError(
                401,
                "invalid_api_key",
                "The API key is unknown or revoked.",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return found

    async def _take(self, bucket: TokenBucket, key_id: str, rate: float, burst: int) -> Decision:
        while True:
            now = time.monotonic()
            left, lapses = self._leases.get(key_id, (0, 0.0))
            if left > 0 and now < lapses:
                self._leases[key_id] = (left - 1, lapses)
                return Decision(True, 0.0)
            refill = self._refills.get(key_id)
            if refill is None:
                break
            await refill  # another request is leasing tokens for this key: share them
        done = asyncio.get_running_loop().create_future()
        self._refills[key_id] = done
        try:
            chunk = max(1, min(burst // 10, int(rate * self.LEASE_S)))
            decision = await bucket.take(key_id, chunk)
            if not decision.allowed and chunk > 1:
                chunk = 1
                decision = await bucket.take(key_id)
            if decision.allowed:
                self._leases[key_id] = (chunk - 1, now + self.LEASE_S)
            return decision
        finally:
            del self._refills[key_id]
            done.set_result(None)

    async def limit(self, who: Principal) -> dict[str, str]:
        """Spend one token of the caller's bucket; the RateLimit headers to answer with.
        Raises a 429 ApiError with Retry-After when the bucket is empty."""
        if who.key_id is None:
            return {}
        rate = who.rate_per_s or self.settings.rate_per_s
        burst = who.burst or self.settings.rate_burst
        bucket = self._buckets.get((rate, burst))
        if bucket is None:
            bucket = TokenBucket(f"{self.prefix}:ratelimit", rate, burst, redis=self.redis)
            self._buckets[(rate, burst)] = bucket
        decision = await self._take(bucket, who.key_id, rate, burst)
        window = max(1, math.ceil(burst / rate))
        headers = {
            "RateLimit-Limit": str(burst),
            "RateLimit-Policy": f"{burst};w={window}",
        }
        if not decision.allowed:
            wait = max(1, math.ceil(decision.retry_after_s))
            raise ApiError(
                429,
                "rate_limited",
                f"Too many requests for this API key; retry in {wait} s.",
                **headers,
                **{
                    "Retry-After": str(wait),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(wait),
                },
            )
        return headers
