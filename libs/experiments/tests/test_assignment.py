from seoblog_contracts import Assignment, Priority
from seoblog_experiments import (
    Experiment,
    Targeting,
    Variant,
    assign,
    bucket,
    cache_tag,
    service_overrides,
)


def _experiment(**fields: object) -> Experiment:
    base: dict[str, object] = {
        "id": "prompt-v2",
        "variants": [Variant(name="v2", share=10, overrides={"generator.prompt_version": "p2"})],
    }
    return Experiment.model_validate(base | fields)


def test_ten_percent_share_gives_ten_plus_minus_three_percent_of_1000_jobs():
    experiment = _experiment()
    ids = [f"{n:032x}" for n in range(1000)]
    chosen = [assign([experiment], i, priority="normal", target_language="de")[0] for i in ids]
    in_variant = sum(a.variant == "v2" for a in chosen)
    assert 70 <= in_variant <= 130
    assert all(a.variant == "control" and a.overrides == {} for a in chosen if a.variant != "v2")


def test_assignment_is_deterministic_and_independent_across_experiments():
    assert bucket("a", "job-1") == bucket("a", "job-1")
    spread = {bucket(e, "job-1") for e in ("a", "b", "c", "d", "e")}
    assert len(spread) > 1
    experiment = _experiment()
    first = [assign([experiment], f"j{n}", priority="low", target_language="de") for n in range(50)]
    again = [assign([experiment], f"j{n}", priority="low", target_language="de") for n in range(50)]
    assert first == again


def test_targeting_leaves_other_jobs_out_and_paused_experiments_assign_nothing():
    experiment = _experiment(targeting=Targeting(priorities=[Priority.LOW]))
    assert assign([experiment], "j", priority="high", target_language="de") == []
    assert len(assign([experiment], "j", priority="low", target_language="de")) == 1
    paused = _experiment(status="paused")
    assert assign([paused], "j", priority="low", target_language="de") == []
    rolled_back = _experiment(status="rolled_back")
    assert assign([rolled_back], "j", priority="low", target_language="de") == []


def test_a_promoted_variant_applies_to_every_matching_job():
    experiment = _experiment(status="promoted", promoted_variant="v2")
    got = [assign([experiment], f"j{n}", priority="low", target_language="de") for n in range(20)]
    assert all(
        a
        == [
            Assignment(
                experiment_id="prompt-v2",
                variant="v2",
                overrides={"generator.prompt_version": "p2"},
            )
        ]
        for a in got
    )


def test_service_overrides_pick_the_services_keys_and_the_first_experiment_wins():
    assignments = [
        Assignment(experiment_id="a", variant="x", overrides={"generator.model": "m1"}),
        Assignment(
            experiment_id="b",
            variant="y",
            overrides={"generator.model": "m2", "translator.model": "t"},
        ),
    ]
    assert service_overrides(assignments, "generator") == {"model": "m1"}
    assert service_overrides(assignments, "translator") == {"model": "t"}
    assert cache_tag(assignments, "crawler") == ""
    assert cache_tag(assignments, "generator") != cache_tag(assignments[1:], "generator")
