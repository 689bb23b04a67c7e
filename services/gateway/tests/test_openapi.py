"""The OpenAPI document: every operation has an example, and schemathesis, generating requests
from it against the in-process app, finds no server error."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app

EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


def has_example(node: Any, spec: dict) -> bool:
    """True if an example sits anywhere in `node`, following $refs into the components."""
    seen: set[str] = set()

    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            if "example" in value or "examples" in value:
                return True
            ref = value.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                target: Any = spec
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]
                if walk(target):
                    return True
            return any(walk(v) for k, v in value.items() if k != "$ref")
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return False

    return walk(node)


async def test_every_operation_documents_an_example(gateway):
    spec = (await gateway.get("/openapi.json")).json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in ("/healthz", "/readyz"):
                continue
            body = operation.get("requestBody", {})
            success = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
            if body and not has_example(body, spec):
                missing.append(f"{method.upper()} {path} request")
            if not has_example(success, spec):
                missing.append(f"{method.upper()} {path} response")
    assert missing == []
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


async def test_every_route_that_takes_a_key_documents_both_ways_to_send_it(gateway):
    spec = (await gateway.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer sk_seo_...`",
    }
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "the same key",
    }
    keyed, open_ = [], []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            (keyed if "401" in operation["responses"] else open_).append((method, path))
            if "401" in operation["responses"]:
                assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
            else:
                assert "security" not in operation, (method, path)
    assert ("post", "/v1/jobs") in keyed
    assert ("get", "/v1/jobs/{job_id}") in keyed
    assert sorted(open_) == [("get", "/healthz"), ("get", "/readyz")]


# Raised inside schemathesis' own strategies, not ours.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_schemathesis_finds_no_server_error(service_env, jobs):
    app = create_app(jobs.settings(service_env))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    calls: dict[str, int] = {}
    try:
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(headers=jobs.admin, checks=checks)
                key = f"{case.method} {case.path}"
                calls[key] = calls.get(key, 0) + 1
                assert response.status_code < 500

            check()
    finally:
        from schemathesis.python import asgi

        asgi.shutdown_lifespans()
    assert len(calls) >= 10, calls  # every operation was exercised
    assert sum(calls.values()) >= 10 * EXAMPLES_PER_OPERATION // 2
