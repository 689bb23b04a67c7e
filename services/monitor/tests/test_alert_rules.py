import pytest

from monitor.alert_rules import AlertAction, FinishedJobs, decide, describe


@pytest.mark.parametrize(
    ("jobs", "active", "action"),
    [
        (FinishedJobs(completed=2, failed=3), False, AlertAction.FIRE),
        (FinishedJobs(completed=0, failed=4), False, AlertAction.KEEP),  # too few jobs
        (FinishedJobs(completed=5, failed=5), False, AlertAction.KEEP),  # at, not above
        (FinishedJobs(completed=2, failed=3), True, AlertAction.KEEP),  # fires only once
        (FinishedJobs(completed=5, failed=5), True, AlertAction.KEEP),  # not yet below
        (FinishedJobs(completed=6, failed=4), True, AlertAction.RESOLVE),
        (FinishedJobs(completed=0, failed=0), True, AlertAction.RESOLVE),  # window emptied
        (FinishedJobs(completed=0, failed=3), True, AlertAction.KEEP),  # few, but all failing
    ],
)
def test_decide_fires_above_threshold_with_enough_jobs_and_resolves_below(jobs, active, action):
    assert decide(jobs, active=active, threshold=0.5, min_jobs=5) is action


def test_finished_jobs_without_any_has_no_failure_rate():
    assert FinishedJobs().failure_rate == 0.0


def test_describe_says_how_many_failed_in_the_window():
    assert describe(FinishedJobs(completed=1, failed=3), 300) == (
        "3 of 4 jobs finished in the last 300 s failed (75%)"
    )


def fire_keep_resolve(check_at, breach, hold, clear):
    """A rule fires once at `breach`, keeps at `hold` (active or not), resolves at `clear`."""
    from monitor.alert_rules import act

    assert act(check_at(breach), active=False) is AlertAction.FIRE
    assert act(check_at(breach), active=True) is AlertAction.KEEP
    assert act(check_at(hold), active=True) is AlertAction.KEEP
    assert act(check_at(hold), active=False) is AlertAction.KEEP
    assert act(check_at(clear), active=True) is AlertAction.RESOLVE
    assert act(check_at(clear), active=False) is AlertAction.KEEP


def test_lag_fires_on_a_growing_backlog_keeps_it_while_it_holds_and_resolves_as_it_drains():
    from monitor.alert_rules import lag_check

    before = {"c": 200}
    fire_keep_resolve(
        lambda n: lag_check({"c": n}, before, threshold=100, window_s=600), 250, 200, 150
    )
    assert not lag_check({"c": 500}, None, threshold=100, window_s=600).breached  # no history


def test_cost_and_latency_keep_their_state_exactly_at_the_threshold():
    from monitor.alert_rules import cost_check, latency_check

    fire_keep_resolve(lambda usd: cost_check(usd, budget_usd=5, window_s=3600), 6, 5, 4)
    fire_keep_resolve(
        lambda p95: latency_check(p95, 3, objective_s=300, min_jobs=1, window_s=900), 400, 300, 200
    )
    assert latency_check(None, 0, objective_s=300, min_jobs=1, window_s=900).cleared


def test_dlq_breaker_stuck_and_down_fire_while_something_is_wrong():
    from monitor.alert_rules import breaker_check, dlq_check, down_check, stuck_check

    assert dlq_check(7, 5, window_s=60).breached
    assert dlq_check(7, 7, window_s=60).cleared
    assert breaker_check({"generator": 2.0, "translator": 0.0}).breached  # half-open counts
    assert breaker_check({"generator": 0.0}).cleared
    assert stuck_check(["a"], after_s=60).breached
    assert stuck_check([], after_s=60).cleared
    assert down_check(["crawler"], after_s=60).summary == "crawler not scraped for 60 s"


def test_a_jobs_cost_counts_once_whichever_of_its_reports_arrives_first():
    from datetime import UTC, datetime

    from monitor.pipeline import JOB_PART, TRANSLATE_PART, CostReport, cost_added

    at = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    minute = at.replace(second=0)
    part = CostReport("a", TRANSLATE_PART, 0.4, 10, at)
    whole = CostReport("a", JOB_PART, 1.5, 30, at)
    for order in ([part, whole], [whole, part]):
        assert cost_added(order, {}) == {(minute, "cost_usd"): 1.5, (minute, "tokens"): 30}
    assert cost_added([whole], {("a", TRANSLATE_PART): (0.4, 10)})[(minute, "cost_usd")] == 1.1
    assert cost_added([part], {("a", JOB_PART): (1.5, 30)})[(minute, "cost_usd")] == 0.0


def test_what_the_monitors_flush_window_holds_back_is_no_lag():
    """The monitor's own consumer leaves up to two flush windows of events pending by design
    (at 6 jobs/s about 170): that alone must not fire consumer_lag_growing."""
    from monitor.alert_rules import lag_check, less_held
    from monitor.handlers import CONSUMER, HELD_BACK_MAX

    held = {CONSUMER: HELD_BACK_MAX}
    before = less_held({CONSUMER: 200, "other": 200}, held)
    now = less_held({CONSUMER: 300, "other": 300}, held)
    check = lag_check(now, before, threshold=100, window_s=600)
    assert check.breached
    assert "other" in check.summary
    assert CONSUMER not in check.summary
    behind = less_held({CONSUMER: HELD_BACK_MAX + 300}, held)
    earlier = less_held({CONSUMER: HELD_BACK_MAX + 200}, held)
    assert lag_check(behind, earlier, threshold=100, window_s=600).breached  # a real backlog
