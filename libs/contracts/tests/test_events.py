import pytest
from pydantic import TypeAdapter, ValidationError

from seoblog_contracts import EVENT_TYPES, SCHEMA_VERSION, JobProgress


def test_unsupported_schema_version_is_rejected_not_read_as_the_current_one():
    raw = '{"job_id": "j", "stage": "crawl", "percent": 5, "schema_version": 99}'
    with pytest.raises(ValidationError, match="unsupported schema_version 99"):
        JobProgress.model_validate_json(raw)


def test_current_version_and_unknown_fields_are_accepted():
    raw = '{"job_id": "j", "stage": "crawl", "percent": 5, "a_field_from_the_future": 1}'
    event = JobProgress.model_validate_json(raw)
    assert event.schema_version == SCHEMA_VERSION


def test_union_of_all_events_rejects_an_unsupported_version_too():
    any_event = TypeAdapter(EVENT_TYPES[0] | EVENT_TYPES[1])
    raw = '{"job_id": "j", "type": "job.submitted", "spec": {"url": "https://a.example/"},'
    with pytest.raises(ValidationError, match="unsupported schema_version 0"):
        any_event.validate_json(raw + ' "schema_version": 0}')
