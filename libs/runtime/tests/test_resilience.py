"""The circuit breaker and the Retry-After aware wait, with a fake clock."""

import pytest
from tenacity import Future, RetryCallState

from seoblog_runtime.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    wait_retry_after,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_fails_fast():
    clock = Clock()
    breaker = CircuitBreaker("llm", failure_threshold=3, reset_s=10, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.on_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.on_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    assert breaker.stats["rejected"] == 1


def test_a_success_resets_the_count_of_consecutive_failures():
    breaker = CircuitBreaker("llm", failure_threshold=2, clock=Clock())
    breaker.on_failure()
    breaker.on_success()
    breaker.on_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_breaker_lets_one_probe_through_and_closes_on_its_success():
    clock = Clock()
    breaker = CircuitBreaker("llm", failure_threshold=1, reset_s=10, clock=clock)
    breaker.on_failure()
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # a second caller waits for the probe's verdict
    breaker.on_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()


def test_failed_probe_reopens_the_breaker_for_another_period():
    clock = Clock()
    breaker = CircuitBreaker("llm", failure_threshold=1, reset_s=10, clock=clock)
    breaker.on_failure()
    clock.now += 10
    breaker.before_call()
    breaker.on_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 9
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()
    assert breaker.stats["opened"] == 2


class Hinted(Exception):
    def __init__(self, seconds: float | None) -> None:
        super().__init__("failed")
        self.seconds = seconds


def state_after(attempt: int, exc: Exception) -> RetryCallState:
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.outcome = Future.construct(attempt, exc, True)
    return state


def test_wait_honours_retry_after_and_caps_it():
    wait = wait_retry_after(lambda e: getattr(e, "seconds", None), initial_s=0.1, max_s=5)
    assert wait(state_after(1, Hinted(2.5))) == 2.5
    assert wait(state_after(1, Hinted(60))) == 5


def test_wait_without_a_hint_backs_off_exponentially_with_bounded_jitter():
    wait = wait_retry_after(lambda e: None, initial_s=0.1, max_s=5, jitter_s=0.1)
    first, third = wait(state_after(1, Hinted(None))), wait(state_after(3, Hinted(None)))
    assert 0.1 <= first <= 0.2
    assert 0.4 <= third <= 0.5
    assert wait(state_after(20, Hinted(None))) == 5


def test_a_released_probe_frees_its_slot_and_decides_nothing():
    clock = Clock()
    breaker = CircuitBreaker("llm", failure_threshold=1, reset_s=10, clock=clock)
    breaker.before_call()
    breaker.on_failure()
    clock.now += 10
    ticket = breaker.before_call()  # the probe
    assert ticket is not None
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # one probe at a time
    breaker.release(ticket)  # cancelled, or timed out before reaching the provider
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.before_call() is not None  # the next call may probe
    breaker.on_success()
    assert breaker.state is BreakerState.CLOSED


def test_a_stale_probe_ticket_frees_no_slot_of_a_later_half_open_period():
    clock = Clock()
    breaker = CircuitBreaker("llm", failure_threshold=1, reset_s=10, clock=clock)
    breaker.on_failure()
    clock.now += 10
    stale = breaker.before_call()
    breaker.on_failure()  # a non-probe call failed meanwhile: open again
    clock.now += 10
    assert breaker.before_call() is not None  # the new period's probe
    breaker.release(stale)
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # still one probe out
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_closed_breaker_hands_out_no_probe_ticket():
    breaker = CircuitBreaker("llm", clock=Clock())
    assert breaker.before_call() is None
    breaker.release(None)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_states_read_as_gauge_numbers():
    assert [s.gauge for s in BreakerState] == [0.0, 1.0, 2.0]
