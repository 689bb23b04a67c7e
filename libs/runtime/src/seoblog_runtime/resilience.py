"""Calling a flaky dependency: a circuit breaker (closed, open, half-open with probes) and the
retry wait that honours a server's Retry-After, on top of tenacity's exponential back-off."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from tenacity import RetryCallState
from tenacity.wait import wait_base, wait_exponential_jitter

log = logging.getLogger("seoblog.resilience")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge(self) -> float:
        """The state as a number for Prometheus: 0 closed, 1 open, 2 half-open."""
        return {"closed": 0.0, "open": 1.0, "half_open": 2.0}[self.value]


class CircuitOpenError(Exception):
    """The breaker is open: the call was not attempted."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        super().__init__(f"circuit {name} is open; next probe in {retry_in_s:.1f}s")
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures and fails fast for `reset_s`;
    then lets up to `probes` calls through (half-open): a success closes it again, a
    failure reopens it for another `reset_s`. Per process: each replica learns on its own."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_s: float = 30.0,
        probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or probes < 1 or reset_s < 0:
            raise ValueError("failure_threshold and probes must be >= 1, reset_s >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self.probes = probes
        self.clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_out = 0
        self._period = 0  # counts open periods, so a stale probe ticket is recognised
        self.stats = {"opened": 0, "rejected": 0, "failures": 0, "successes": 0}

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return self._state

    def before_call(self) -> int | None:
        """Raise CircuitOpenError unless a call may go out now. Returns a ticket when the call
        took a half-open probe slot (None otherwise): settle it with on_success/on_failure,
        or hand it back with `release` if the call ended without an answer either way."""
        state = self.state
        if state is BreakerState.CLOSED:
            return None
        if state is BreakerState.HALF_OPEN:
            if self._state is BreakerState.OPEN:  # the open period just ended
                self._state = BreakerState.HALF_OPEN
                self._probes_out = 0
            if self._probes_out < self.probes:
                self._probes_out += 1
                return self._period
            self.stats["rejected"] += 1
            raise CircuitOpenError(self.name, 0.0)
        self.stats["rejected"] += 1
        raise CircuitOpenError(self.name, self.reset_s - (self.clock() - self._opened_at))

    def release(self, ticket: int | None) -> None:
        """A probe that was cancelled or never reached the provider (say, it timed out in the
        rate limiter) tells nothing: free its slot for the next call. A ticket from an earlier
        half-open period (the breaker has reopened or closed since) frees nothing."""
        if (
            ticket is not None
            and ticket == self._period
            and self._state is BreakerState.HALF_OPEN
            and self._probes_out > 0
        ):
            self._probes_out -= 1

    def on_success(self) -> None:
        self.stats["successes"] += 1
        if self._state is not BreakerState.CLOSED:
            log.info("circuit closed", extra={"circuit": self.name})
            self._period += 1
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probes_out = 0

    def on_failure(self) -> None:
        self.stats["failures"] += 1
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            if self._state is not BreakerState.OPEN:
                self.stats["opened"] += 1
                log.warning(
                    "circuit opened",
                    extra={"circuit": self.name, "failures": self._failures},
                )
            self._state = BreakerState.OPEN
            self._opened_at = self.clock()
            self._probes_out = 0
            self._period += 1


class wait_retry_after(wait_base):  # named like tenacity's own wait strategies
    """Exponential back-off with jitter, but never shorter than the Retry-After the failed
    attempt's exception carries (`retry_after_of(exc)`), capped at `max_s`."""

    def __init__(
        self,
        retry_after_of: Callable[[BaseException], float | None],
        *,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        jitter_s: float = 0.5,
    ) -> None:
        self.retry_after_of = retry_after_of
        self.max_s = max_s
        self.backoff = wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=jitter_s)

    def __call__(self, retry_state: RetryCallState) -> float:
        computed = float(self.backoff(retry_state))
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        hinted = self.retry_after_of(exc) if exc is not None else None
        if hinted is not None:
            return min(self.max_s, max(hinted, 0.0))
        return min(self.max_s, computed)
