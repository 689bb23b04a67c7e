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
