"""Priority slots: high before normal before low, and low never starved."""

import asyncio

import pytest

from crawler.priority import PrioritySlots
from seoblog_contracts import Priority
from seoblog_testing import wait_until

H, N, L = Priority.HIGH, Priority.NORMAL, Priority.LOW


async def run_backlog(slots: PrioritySlots, backlog: list[Priority]) -> list[Priority]:
    """Queue `backlog` while one job holds the only slot, then let it drain; grant order."""
    served: list[Priority] = []
    release = asyncio.Event()

    async def job(priority: Priority) -> None:
        async with slots.slot(priority):
            served.append(priority)

    async def blocker() -> None:
        async with slots.slot(H):
            await release.wait()

    first = asyncio.create_task(blocker())
    await wait_until(lambda: slots.in_use == 1)
    tasks = [asyncio.create_task(job(p)) for p in backlog]
    await wait_until(lambda: sum(slots.waiting(p) for p in Priority) == len(backlog))
    release.set()
    await asyncio.gather(first, *tasks)
    return served


async def test_backlog_is_served_high_then_normal_then_low_when_low_is_not_starving() -> None:
    slots = PrioritySlots(capacity=1, starvation_limit=100)

    served = await run_backlog(slots, [L, L, N, N, H, H, L, N, H])

    assert served == [H, H, H, N, N, N, L, L, L]


async def test_low_gets_a_slot_after_being_passed_over_starvation_limit_times() -> None:
    slots = PrioritySlots(capacity=1, starvation_limit=3)

    served = await run_backlog(slots, [L] * 3 + [N] * 6 + [H] * 12)

    # A waiting priority is passed over at most starvation_limit times, plus one grant when
    # normal is owed a slot at the same moment.
    lows = [i for i, p in enumerate(served) if p == L]
    gaps = [b - a for a, b in zip([-1, *lows], lows, strict=False)]
    assert max(gaps) <= 3 + 2
    assert served[:3] == [H, H, H]
    assert served.count(H) == 12
    assert served.count(L) == 3
    high_positions = [i for i, p in enumerate(served) if p == H]
    assert sum(high_positions) / 12 < sum(i for i, p in enumerate(served) if p == N) / 6


async def test_slots_bound_concurrency() -> None:
    slots = PrioritySlots(capacity=3)
    peak = 0

    async def job(priority: Priority) -> None:
        nonlocal peak
        async with slots.slot(priority):
            peak = max(peak, slots.in_use)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(job(p) for p in [H, N, L] * 5))

    assert peak == 3
    assert slots.in_use == 0


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    slots = PrioritySlots(capacity=1)
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.slot(H):
            await release.wait()

    held = asyncio.create_task(holder())
    await wait_until(lambda: slots.in_use == 1)
    waiter = asyncio.create_task(slots.slot(L).__aenter__())
    await wait_until(lambda: slots.waiting(L) == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await held

    assert slots.in_use == 0
    async with slots.slot(N):
        assert slots.in_use == 1
