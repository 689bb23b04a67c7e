import pytest
from pydantic import ValidationError

from seoblog_experiments import ExperimentDefinition, Guardrail, validate_overrides


def test_unknown_override_keys_and_bad_values_are_rejected():
    assert validate_overrides({"generator.prompt_version": "post_v2"}) == []
    assert validate_overrides({"generator.max_tokens": 10}) == [
        "'generator.max_tokens' is not an override any service accepts"
    ]
    assert validate_overrides({"crawler.extract_mode": "fast"})[0].startswith(
        "'crawler.extract_mode' must be one of"
    )
    assert validate_overrides({"generator.temperature": 5})[0].endswith("at most 2")
    assert validate_overrides({"generator.revise_below": True}) == [
        "'generator.revise_below' must be a number"
    ]
    with pytest.raises(ValidationError, match="not an override any service accepts"):
        ExperimentDefinition.model_validate(
            {"id": "x", "variants": [{"name": "v", "share": 5, "overrides": {"nope": 1}}]}
        )


def test_definitions_need_distinct_names_shares_within_100_and_rising_steps():
    with pytest.raises(ValidationError, match="differ"):
        ExperimentDefinition.model_validate({"id": "x", "variants": [{"name": "control"}]})
    with pytest.raises(ValidationError, match="more than 100"):
        ExperimentDefinition.model_validate(
            {"id": "x", "variants": [{"name": "a", "share": 60}, {"name": "b", "share": 50}]}
        )
    with pytest.raises(ValidationError, match="rise"):
        ExperimentDefinition.model_validate(
            {"id": "x", "variants": [{"name": "a"}], "ramp": {"steps": [10, 5]}}
        )
    with pytest.raises(ValidationError, match="exactly one"):
        Guardrail(metric="seo_score", min_difference=-5, max_ratio=2)
