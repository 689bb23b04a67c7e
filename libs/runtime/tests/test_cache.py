import asyncio
import sys

import pytest

from seoblog_runtime import Cache
from seoblog_testing import unique_name, wait_until


@pytest.fixture
async def redis_url(infra):
    if infra.redis_url is None:
        pytest.fail("these tests need Redis; the machine's Redis did not answer")
    return infra.redis_url


async def test_value_set_in_one_replica_is_read_by_another_through_redis(redis_url):
    prefix = unique_name()
    a, b = Cache(prefix, redis_url), Cache(prefix, redis_url)
    await a.open()
    await b.open()
    try:
        await a.set("k", b"v")
        assert await b.get("k") == b"v"
        assert b.stats["remote_hits"] == 1
        assert await b.get("k") == b"v"
        assert b.stats["local_hits"] == 1
    finally:
        await a.close()
        await b.close()


async def test_memory_only_cache_works_without_redis():
    cache = Cache(unique_name())
    await cache.open()
    await cache.set("k", b"v")
    assert await cache.get("k") == b"v"
    assert await cache.get("missing") is None
    assert await cache.ping()


async def test_single_flight_runs_identical_work_once_within_and_across_replicas(redis_url):
    prefix = unique_name()
    replicas = [Cache(prefix, redis_url) for _ in range(3)]
    for r in replicas:
        await r.open()
    calls = 0

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return b"result"

    try:
        results = await asyncio.gather(
            *(r.get_or_compute("same", compute) for r in replicas for _ in range(10))
        )
        assert results == [b"result"] * 30
        assert calls == 1
    finally:
        for r in replicas:
            await r.close()


async def test_failed_computation_is_not_cached_and_reaches_every_waiter():
    cache = Cache(unique_name())

    async def boom() -> bytes:
        await asyncio.sleep(0.05)
        raise RuntimeError("provider down")

    results = await asyncio.gather(
        *(cache.get_or_compute("k", boom) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get("k") is None


async def test_lock_is_renewed_so_long_work_is_not_repeated_by_another_replica(redis_url):
    prefix = unique_name()
    a = Cache(prefix, redis_url, lock_ttl_s=0.3)
    b = Cache(prefix, redis_url, lock_ttl_s=0.3)
    await a.open()
    await b.open()
    calls = 0

    async def slow() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(1.0)  # more than three lock lifetimes
        return b"done"

    try:
        first = asyncio.create_task(a.get_or_compute("long", slow))
        await asyncio.sleep(0.05)
        second = await b.get_or_compute("long", slow)
        assert await first == second == b"done"
        assert calls == 1
    finally:
        await a.close()
        await b.close()


async def test_lock_of_a_crashed_replica_lapses_and_another_takes_over(redis_url):
    prefix = unique_name()
    cache = Cache(prefix, redis_url, lock_ttl_s=0.3)
    await cache.open()
    try:
        assert cache.redis is not None
        # What a replica that died mid-computation leaves behind: its lock, no value.
        await cache.redis.set(f"{prefix}:lock:k", "dead-replica", px=300)

        async def compute() -> bytes:
            return b"fresh"

        assert await cache.get_or_compute("k", compute) == b"fresh"
        assert cache.stats["coalesced"] >= 1
    finally:
        await cache.close()


_HOLDER = """
import asyncio, sys
from seoblog_runtime import Cache

async def main() -> None:
    cache = Cache(sys.argv[1], sys.argv[2])  # the production lock lifetime
    await cache.open()

    async def forever() -> bytes:
        print("holding", flush=True)
        await asyncio.sleep(3600)
        return b"never"

    await cache.get_or_compute("k", forever)

asyncio.run(main())
"""


async def test_lock_of_a_killed_holder_lapses_soon_and_a_waiter_computes(redis_url):
    prefix = unique_name()
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, prefix, redis_url, stdout=asyncio.subprocess.PIPE
    )
    cache = Cache(prefix, redis_url)
    await cache.open()
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"holding\n"
        await asyncio.sleep(cache.lock_ttl_s / 2)  # the holder has renewed its lock by now
        holder.kill()  # kill -9: no release, no more renewals
        await holder.wait()

        async def compute() -> bytes:
            return b"fresh"

        # A waiter stalls until the dead holder's lock lapses, not for minutes (issue 9 B).
        value = await asyncio.wait_for(cache.get_or_compute("k", compute), timeout=20)
        assert value == b"fresh"
        assert cache.stats["coalesced"] >= 1
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await cache.close()


async def test_a_miss_costs_two_redis_round_trips_and_a_hit_one(redis_url):
    import redis.asyncio as aioredis

    prefix = unique_name()
    warm = Cache(unique_name(), redis_url)  # loads the scripts into Redis (SCRIPT LOAD)
    cache, other = Cache(prefix, redis_url), Cache(prefix, redis_url)
    for c in (warm, cache, other):
        await c.open()
    seen: list[str] = []
    watcher = aioredis.from_url(redis_url)

    async def watch(ready: asyncio.Event) -> None:
        async with watcher.monitor() as monitor:
            ready.set()
            async for command in monitor.listen():
                # Commands a script runs inside Redis show as client "lua": not round trips.
                if prefix in command["command"] and command.get("client_type") != "lua":
                    seen.append(command["command"].split()[0].upper())

    async def compute() -> bytes:
        return b"value"

    try:
        await warm.get_or_compute("k", compute)
        ready = asyncio.Event()
        task = asyncio.create_task(watch(ready))
        await ready.wait()
        assert await cache.get_or_compute("k", compute) == b"value"  # a miss: computed here
        assert await other.get_or_compute("k", compute) == b"value"  # another replica's hit
        await wait_until(lambda: len(seen) >= 3, timeout_s=5)
        await asyncio.sleep(0.2)
        task.cancel()
        assert seen == ["EVALSHA", "EVALSHA", "EVALSHA"]  # claim + store; claim (the value)
        assert cache.stats["misses"] == 1
        assert other.stats["remote_hits"] == 1
    finally:
        for c in (warm, cache, other):
            await c.close()
        await watcher.aclose()
