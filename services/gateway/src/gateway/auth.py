"""API keys and scopes: keys are `sk_seo_` + 43 random characters, only their sha256 is stored;
each request names its key (Bearer or X-API-Key) and spends a token of that key's bucket.

Failed authentications are limited per client address (a token bucket like the keys' own), and
unknown keys are remembered for a minute, so guessing keys costs no database lookup each. A
revoked key is forgotten at once on every replica (a core NATS notice), and open live streams
ask `still_valid` every few seconds."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
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

log = logging.getLogger("gateway.auth")

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


_ALLOWED = Decision(True, 0.0)


class Authenticator:
    """Key lookups (cached for a few seconds, so revocation reaches every replica in that
    time) and per-key token buckets in Redis.

    A replica takes a key's tokens from Redis a few at a time (at most a tenth of the burst,
    and what the rate refills in LEASE_S) and spends them locally, so most requests skip the
    Redis round trip; leased tokens left unspent lapse after LEASE_S, which can only make
    the limit stricter, never looser."""

    LEASE_S = 0.5
    UNKNOWN_TTL_S = 60.0

    def __init__(self, settings: Settings, store: PgJobStore, cache_ttl_s: float = 5.0) -> None:
        self.settings = settings
        self.store = store
        self._keys: TTLCache[str, Principal | None] = TTLCache(maxsize=10_000, ttl=cache_ttl_s)
        # Digests of keys that are not ours: a guess repeated costs no lookup. A new key is
        # random, so it is never here; `forget` clears it with the rest.
        self._unknown: TTLCache[str, bool] = TTLCache(maxsize=100_000, ttl=self.UNKNOWN_TTL_S)
        # Client addresses over their failed-authentication budget: until when (monotonic).
        self._blocked: TTLCache[str, float] = TTLCache(maxsize=100_000, ttl=3600)
        self._failures: TokenBucket | None = None
        self._jobs: TokenBucket | None = None
        self._sub: Any = None
        self._nc: Any = None
        self.revocations_subject = ""
        self._buckets: dict[tuple[float, int], TokenBucket] = {}
        # key id: [tokens left, lapses at]; bounded, whatever the number of keys
        self._leases: TTLCache[str, list[Any]] = TTLCache(10_000, ttl=self.LEASE_S)
        self._headers: dict[tuple[float, int], dict[str, str]] = {}
        self._refills: dict[str, asyncio.Future[None]] = {}
        self.redis: Any = None
        self.prefix = ""

    async def start(
        self, redis: Any, prefix: str, nc: Any = None, revocations_subject: str = ""
    ) -> None:
        self.redis, self.prefix = redis, prefix
        s = self.settings
        self._failures = TokenBucket(
            f"{prefix}:authfail", s.auth_fail_per_s, s.auth_fail_burst, redis=redis
        )
        self._jobs = TokenBucket(f"{prefix}:jobs", s.jobs_per_s, s.jobs_burst, redis=redis)
        if s.admin_key is not None:
            key = s.admin_key.get_secret_value()
            if key:
                await self.store.put_bootstrap_key(hash_key(key), hint_of(key))
        self.forget()
        if nc is not None and revocations_subject:
            self._nc, self.revocations_subject = nc, revocations_subject
            self._sub = await nc.subscribe(revocations_subject, cb=self._on_revoked)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # the connection is closing anyway
                log.debug("revocation subscription not closed", exc_info=True)
            self._sub = None

    def forget(self) -> None:
        self._keys.clear()
        self._unknown.clear()

    async def revoked(self, key_id: str) -> None:
        """A key was revoked here: forget every key now, and tell the other replicas to."""
        self.forget()
        if self._nc is not None:
            try:
                await self._nc.publish(
                    self.revocations_subject, json.dumps({"key_id": key_id}).encode()
                )
            except Exception:  # the others forget within the key cache's TTL anyway
                log.warning("key revocation not announced", exc_info=True)

    async def _on_revoked(self, _msg: Any) -> None:
        self.forget()

    async def _lookup(self, digest: str) -> Principal | None:
        """The key of this digest, from the caches or PostgreSQL (then cached)."""
        if digest in self._keys:
            return self._keys[digest]
        if digest in self._unknown:
            return None
        row = await self.store.key_by_hash(digest)
        found = (
            None
            if row is None
            else Principal(row["key_id"], frozenset(row["scopes"]), row["rate_per_s"], row["burst"])
        )
        if found is None:
            self._unknown[digest] = True
        else:
            self._keys[digest] = found
        return found

    async def still_valid(self, key: str | None) -> bool:
        """For open live streams: is the key they opened with still a key (cheap: cached)?"""
        if not key:
            return True  # open mode: there is no key to revoke
        return await self._lookup(hash_key(key)) is not None

    async def principal(self, key: str | None, client: str | None = None) -> Principal:
        """The caller of `key`, asked from client address `client`. Raises 401 for a missing
        or unknown key, and 429 once `client` has failed too often."""
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
        known = self._keys.get(digest)
        if known is not None:
            return known  # the hot path: one cache read
        if client is not None:
            self._refuse_if_blocked(client)  # before any lookup: a blocked guesser costs none
        found = await self._lookup(digest)
        if found is None:
            if self.settings.open_mode:
                return OPEN
            if client is not None:
                await self._count_failure(client)
            raise ApiError(
                401,
                "invalid_api_key",
                "The API key is unknown or revoked.",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return found

    def _refuse_if_blocked(self, client: str) -> None:
        until = self._blocked.get(client)
        if until is not None:
            wait = until - time.monotonic()
            if wait > 0:
                raise _too_many_failures(wait)
            self._blocked.pop(client, None)

    async def _count_failure(self, client: str) -> None:
        if self._failures is None:
            return
        decision = await self._failures.take(client)
        if not decision.allowed:
            self._blocked[client] = time.monotonic() + decision.retry_after_s
            raise _too_many_failures(decision.retry_after_s)

    async def _take(
        self, bucket: TokenBucket, key_id: str, rate: float, burst: int, lease: str = ""
    ) -> Decision:
        lease = lease or key_id  # a bucket other than the requests' leases under another name
        while True:
            now = time.monotonic()
            held = self._leases.get(lease)
            if held is not None and held[0] > 0 and now < held[1]:
                held[0] -= 1  # in place: no cache write per request
                return _ALLOWED
            refill = self._refills.get(lease)
            if refill is None:
                break
            await refill  # another request is leasing tokens for this key: share them
        done = asyncio.get_running_loop().create_future()
        self._refills[lease] = done
        try:
            chunk = max(1, min(burst // 10, int(rate * self.LEASE_S)))
            decision = await bucket.take(key_id, chunk)
            if not decision.allowed and chunk > 1:
                chunk = 1
                decision = await bucket.take(key_id)
            if decision.allowed:
                self._leases[lease] = [chunk - 1, now + self.LEASE_S]
            return decision
        finally:
            del self._refills[lease]
            done.set_result(None)

    async def charge_jobs(self, who: Principal, jobs: int) -> None:
        """Take `jobs` from the key's jobs quota (GATEWAY_JOBS_PER_S up to GATEWAY_JOBS_BURST),
        all or none; 429 with Retry-After when the quota has fewer left."""
        if who.key_id is None or self._jobs is None:
            return
        burst = self.settings.jobs_burst
        if jobs > burst:
            raise ApiError(
                422,
                "batch_too_large",
                f"An API key may submit at most {burst} jobs at once; this batch has {jobs}.",
            )
        if jobs == 1:  # a single submit spends leased tokens, as requests do
            rate = self._jobs.rate_per_s
            decision = await self._take(self._jobs, who.key_id, rate, burst, f"jobs:{who.key_id}")
        else:
            decision = await self._jobs.take(who.key_id, jobs)
        if not decision.allowed:
            wait = max(1, math.ceil(decision.retry_after_s))
            raise ApiError(
                429,
                "jobs_rate_limited",
                f"This API key may submit {self.settings.jobs_per_s:g} jobs a second, "
                f"{burst} at once; {jobs} more fit in {wait} s. Nothing was queued.",
                **{"Retry-After": str(wait)},
            )

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
        headers = self._headers.get((rate, burst))
        if headers is None:  # one per bucket, shared: callers only read it
            window = max(1, math.ceil(burst / rate))
            headers = {"RateLimit-Limit": str(burst), "RateLimit-Policy": f"{burst};w={window}"}
            self._headers[(rate, burst)] = headers
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


def _too_many_failures(wait_s: float) -> ApiError:
    wait = max(1, math.ceil(wait_s))
    return ApiError(
        429,
        "too_many_auth_failures",
        f"Too many requests with unknown API keys from this address; retry in {wait} s.",
        **{"Retry-After": str(wait)},
    )
