"""Entries of the two-level cache that carry their own expiry, so neither level (the
in-process LRU has one lifetime for every entry) can serve them past it."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from seoblog_runtime import Cache

_EXPIRES = "expires_at"


async def fresh_json(
    cache: Cache,
    key: str,
    ttl_s: float,
    compute: Callable[[], Awaitable[dict[str, Any]]],
) -> tuple[dict[str, Any], bool]:
    """The cached value while it is fresh, else `compute()` once across replicas (single
    flight). Returns the value and whether this call computed it. `compute` may shorten the
    entry's life by setting "ttl_s" in what it returns."""
    computed: dict[str, Any] | None = None

    async def run() -> bytes:
        nonlocal computed
        value = await compute()
        value[_EXPIRES] = time.time() + float(value.pop("ttl_s", ttl_s))
        computed = value
        return json.dumps(value).encode()

    for _ in range(2):
        raw = await cache.get_or_compute(key, run, ttl_s=ttl_s)
        if computed is not None:  # ours: no need to read back what we just wrote
            return computed, True
        value: dict[str, Any] = json.loads(raw)
        if value.get(_EXPIRES, 0) > time.time():
            return value, False
        await cache.delete(key)  # stale in one of the levels: compute afresh
    return value, False
