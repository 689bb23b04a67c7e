import asyncio
import time

import pytest
import redis.asyncio as aioredis

from seoblog_runtime.ratelimit import TokenBucket
from seoblog_testing import unique_name


@pytest.fixture
async def redis_client(infra):
    client = aioredis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def test_bucket_allows_its_capacity_then_says_how_long_to_wait(redis_client):
    bucket = TokenBucket(unique_name(), rate_per_s=10, capacity=3, redis=redis_client)
    results = [await bucket.take("k") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert 0 < results[-1].retry_after_s <= 0.1


async def test_two_replicas_share_one_bucket_through_redis(infra):
    prefix = unique_name()
    a, b = aioredis.from_url(infra.redis_url), aioredis.from_url(infra.redis_url)
    try:
        one = TokenBucket(prefix, rate_per_s=1, capacity=4, redis=a)
        two = TokenBucket(prefix, rate_per_s=1, capacity=4, redis=b)
        taken = await asyncio.gather(*(r.take("host") for r in (one, two) * 4))
        assert sum(d.allowed for d in taken) == 4
    finally:
        await a.aclose()
        await b.aclose()


async def test_keys_have_separate_buckets():
    bucket = TokenBucket(unique_name(), rate_per_s=1, capacity=1)
    assert (await bucket.take("a")).allowed
    assert (await bucket.take("b")).allowed
    assert not (await bucket.take("a")).allowed


async def test_acquire_waits_for_refill_in_process():
    bucket = TokenBucket(unique_name(), rate_per_s=20, capacity=1)
    await bucket.acquire()
    started = time.monotonic()
    waited = await bucket.acquire()
    assert waited > 0
    assert time.monotonic() - started >= 0.04


async def test_acquire_gives_up_past_its_timeout():
    bucket = TokenBucket(unique_name(), rate_per_s=0.1, capacity=1)
    await bucket.acquire()
    with pytest.raises(TimeoutError):
        await bucket.acquire(timeout_s=0.5)
