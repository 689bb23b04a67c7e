"""The event contract: docs/asyncapi.yaml and docs/events.md are what the models generate, and an
outside program written from them (examples/subscriber.py) follows real jobs to the end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from seoblog_contracts import EVENT_TYPES, Subjects
from seoblog_contracts.asyncapi import (
    BEGIN,
    END,
    EXAMPLES,
    document,
    markdown,
    render_yaml,
    schemas,
)
from seoblog_testing import drop_namespace, env_for, unique_name
from seoblog_testing.processes import running_stack

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = (
    "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f",  # NASA, Europa
)
REGENERATE = "make events-doc"


def test_docs_asyncapi_yaml_is_what_the_models_generate() -> None:
    on_disk = (ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert on_disk == render_yaml(), f"docs/asyncapi.yaml is stale: run {REGENERATE}"


def test_docs_events_md_lists_what_the_models_generate() -> None:
    page = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    generated = page.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == markdown().strip(), f"docs/events.md is stale: run {REGENERATE}"


def test_every_event_has_a_channel_on_its_real_subject_and_a_valid_example() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    for model in EVENT_TYPES:
        assert model in EXAMPLES
        model.model_validate(doc["components"]["schemas"][model.__name__]["examples"][0])
        if model.__name__ == "JobSubmitted":
            assert Subjects().submitted("high").startswith("seo.job.submitted.")
            assert "seo.job.submitted.{priority}" in addresses
        else:
            assert Subjects().of(model) in addresses
    assert yaml.safe_load(render_yaml()) == json.loads(json.dumps(doc))


def test_every_field_of_every_payload_is_described() -> None:
    missing = [
        f"{name}.{field}"
        for name, schema in schemas().items()
        for field, prop in schema.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


def _start_subscriber(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "subscriber.py"), "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    assert ready["event"] == "ready", ready
    return process


def _lines(process: subprocess.Popen[str], timeout: float) -> list[dict]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_the_example_subscriber_follows_jobs_to_completion_on_the_real_system(
    infra, fixture_site
) -> None:
    ns = unique_name()
    try:
        with running_stack(env_for(infra, ns)) as stack:
            common = ["--nats", infra.nats_url, "--namespace", ns, "--count", "2"]
            follower = _start_subscriber("--follow", *common)
            bodies = [
                {
                    "url": fixture_site.article_url(ARTICLES[0]) + f"?copy={i}",
                    "keywords": ["Europa"],
                }
                for i in range(2)
            ]
            with httpx.Client(timeout=10) as client:
                ids = [client.post(f"{stack.gateway}/v1/jobs", json=b).json()["id"] for b in bodies]
            followed = _lines(follower, timeout=90)
            reader = _start_subscriber("--durable", f"cms-{ns}", *common)
            posts = _lines(reader, timeout=60)
    finally:
        asyncio.run(drop_namespace(infra, ns))

    for job_id in ids:
        lines = [line for line in followed if line.get("job_id") == job_id]
        states = [line["state"] for line in lines if "state" in line]
        assert states[-1] == "completed", (job_id, followed)
        assert "crawling" in states
        assert "generating" in states
        done = lines[-1]
        assert 0 <= done["score"] <= 100
        assert done["writer"] == "offline"
    assert sorted(p["job_id"] for p in posts) == sorted(ids)
