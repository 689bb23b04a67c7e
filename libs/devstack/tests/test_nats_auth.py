"""Per-service NATS users: the permission table matches what the services' code publishes and
consumes, the generated deployment files are current, and a real nats-server started with the
generated configuration lets each service publish its own events and refuses the others'."""

from __future__ import annotations

import ast
import asyncio
import importlib
import logging
import stat
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

import seoblog_contracts
from seoblog_contracts import (
    Event,
    JobProgress,
    JobSpec,
    PageCrawled,
    PostGenerated,
    Stage,
    Subjects,
    TextTranslated,
)
from seoblog_devstack import nats_auth, up
from seoblog_devstack.infra import (
    NATS_PASSWORDS_FILE,
    Infra,
    ensure_infra,
    free_port,
    nats_passwords,
)
from seoblog_runtime import Bus, ServiceSettings
from seoblog_runtime import bus as bus_module
from seoblog_testing import drop_namespace, env_for, unique_name, wait_until
from seoblog_testing.processes import ServiceProcess, Stack

REPO = Path(__file__).resolve().parents[3]
EVENT_CLASSES = {
    name: cls
    for name in seoblog_contracts.__all__
    if isinstance(cls := getattr(seoblog_contracts, name), type)
    and issubclass(cls, Event)
    and cls is not Event
}
ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` one or more at the end."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def allowed(service: str, subject: str, namespace: str = "") -> bool:
    rules = nats_auth.permissions(service, namespace)["publish"]["allow"]
    return any(matches(rule, subject) for rule in rules)


def events_built_by(service: str) -> set[type[Event]]:
    """Event classes the service's source constructs (`PageCrawled(...)`): what it publishes."""
    built: set[type[Event]] = set()
    for path in (REPO / "services" / service / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if call and node.func.id in EVENT_CLASSES:  # type: ignore[attr-defined]
                built.add(EVENT_CLASSES[node.func.id])  # type: ignore[attr-defined]
    return built


def is_pipeline_stage(service: str) -> bool:
    """A service whose parts are built with a stage: its bus publishes seo.job.failed."""
    source = (REPO / "services" / service / "src" / service / "app.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "build_parts":
            return any(k.arg == "stage" for k in node.keywords)
    return False


def consumed_subjects(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """The filter subjects each service's app registers consumers for (nothing connects)."""
    seen: dict[str, set[str]] = {}
    register = bus_module.Bus._register

    def record(self: Bus, subject: str, durable: str, *args: Any, **kwargs: Any) -> None:
        seen.setdefault(self.settings.service, set()).add(subject)
        register(self, subject, durable, *args, **kwargs)

    monkeypatch.setattr(bus_module.Bus, "_register", record)
    for service in nats_auth.IDENTITIES:
        importlib.import_module(f"{service}.app").create_app()
    return seen


def test_every_service_may_publish_exactly_the_events_its_code_builds() -> None:
    assert set(nats_auth.IDENTITIES) == {"crawler", "translator", "generator", "monitor", "gateway"}
    from seoblog_contracts import JobFailed

    for service, identity in nats_auth.IDENTITIES.items():
        expected = events_built_by(service) | ({JobFailed} if is_pipeline_stage(service) else set())
        assert set(identity.publishes) == expected, service


def test_every_consumer_may_dead_letter_and_no_service_may_publish_foreign_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subjects = Subjects()
    consumed = consumed_subjects(monkeypatch)
    assert set(consumed) == set(nats_auth.IDENTITIES)
    for service, filters in consumed.items():
        for subject in filters:
            concrete = subject.replace("*", "high").replace(">", "job.failed")
            assert allowed(service, subjects.dlq(concrete)), (service, subject)
    for service, identity in nats_auth.IDENTITIES.items():
        for name, event in EVENT_CLASSES.items():
            subject = nats_auth.event_subject(subjects, event).replace("*", "normal")
            assert allowed(service, subject) == (event in identity.publishes), (service, name)
        # JetStream administration beyond the service's needs stays closed.
        assert not allowed(service, "$JS.API.STREAM.DELETE.SEO")
        assert not allowed(service, "$JS.API.STREAM.PURGE.SEO")
        assert not allowed(service, "$JS.API.STREAM.MSG.DELETE.SEO")


def test_namespaced_permissions_stay_inside_the_namespace() -> None:
    rules = nats_auth.permissions("translator", "t1")["publish"]["allow"]
    assert "t1.seo.text.translated" in rules
    assert "$JS.API.STREAM.CREATE.T1_SEO" in rules
    assert not any(rule.startswith("seo.") for rule in rules)
    assert not allowed("translator", "t2.seo.text.translated", "t1")


def test_generated_deployment_files_are_current() -> None:
    conf = REPO / "deploy" / "nats" / "auth.conf"
    helm = REPO / "k8s" / "nats" / "auth-values.yaml"
    hint = (
        "run: uv run python -m seoblog_devstack.nats_auth"
        " --conf deploy/nats/auth.conf --helm k8s/nats/auth-values.yaml"
    )
    assert conf.read_text() == nats_auth.server_config(), hint
    dev = REPO / "k8s" / "overlays" / "dev" / "nats-auth.conf"
    assert dev.read_text() == nats_auth.server_config(), "cp deploy/nats/auth.conf " + str(dev)
    assert helm.read_text() == nats_auth.helm_values(), hint


def test_passwords_are_per_data_dir_private_and_kept(tmp_path: Path) -> None:
    first = nats_passwords(tmp_path / "a")
    assert set(first) == {*nats_auth.IDENTITIES, nats_auth.ADMIN}
    assert len(set(first.values())) == len(first)
    assert nats_passwords(tmp_path / "a") == first
    assert nats_passwords(tmp_path / "b") != first
    mode = (tmp_path / "a" / NATS_PASSWORDS_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_a_running_nats_without_auth_is_used_with_a_warning(
    infra: Infra, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEOBLOG_EMBEDDED", raising=False)
    with caplog.at_level(logging.INFO, logger="seoblog.devstack"):
        found = ensure_infra(
            tmp_path,
            nats_url=infra.nats_url,
            database_url=infra.database_url,
            want_redis=False,
            nats_auth=True,
        )
    found.stop()
    assert found.started == []
    assert found.nats_passwords is None
    assert any(
        r.levelno == logging.WARNING and "without credentials" in r.getMessage()
        for r in caplog.records
    )


@pytest.fixture
def secured(infra: Infra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An embedded NATS started by devstack with per-service users, in a namespace of ours."""
    ns = unique_name()
    monkeypatch.setenv("SEOBLOG_NAMESPACE", ns)
    monkeypatch.delenv("SEOBLOG_EMBEDDED", raising=False)
    nowhere = f"nats://127.0.0.1:{free_port()}"
    started = ensure_infra(
        tmp_path,
        nats_url=nowhere,
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        nats_auth=True,
    )
    try:
        assert started.started == ["nats"]
        assert started.nats_passwords is not None
        yield started, ns
    finally:
        started.stop()
        asyncio.run(drop_namespace(infra, ns))


def settings_as(service: str, secured_infra: Infra, ns: str) -> ServiceSettings:
    assert secured_infra.nats_passwords is not None
    return ServiceSettings(
        service=service,
        nats_url=secured_infra.nats_url,
        namespace=ns,
        nats_user=service,
        nats_password=secured_infra.nats_passwords[service],
        event_key="k" * 32,
    )


async def refused(url: str, subject: str, **auth: str) -> str | None:
    """Publish on core NATS as a user; the server's permission error, or None."""
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, **auth)
    try:
        await nc.publish(subject, b"{}")
        await nc.flush()
        for _ in range(20):
            if errors:
                break
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    return str(errors[0]) if errors else None


async def test_a_service_publishes_its_own_events_and_is_refused_another_services(secured) -> None:
    infra, ns = secured
    assert infra.nats_passwords is not None
    subjects = Subjects(ns)
    bus = Bus(settings_as("translator", infra, ns), stage=Stage.TRANSLATE)
    await bus.start()  # declares the streams: the JetStream API it needs is allowed
    try:
        spec = JobSpec(url="https://example.com/a", keywords=["k"], target_language="de")
        await bus.publish(
            TextTranslated(
                job_id="j1",
                spec=spec,
                source_url="https://example.com/a",
                title="t",
                text="x",
                source_language="en",
                target_language="de",
                translated=True,
                content_hash="h",
            )
        )
        await bus.publish(JobProgress(job_id="j1", stage=Stage.TRANSLATE, percent=50))
        info = await bus.js.stream_info(subjects.stream)
        assert info.state.messages == 2
    finally:
        await bus.stop()

    pw = infra.nats_passwords
    violation = await refused(
        infra.nats_url, subjects.of(PostGenerated), user="translator", password=pw["translator"]
    )
    assert violation is not None
    assert "permissions violation" in violation.lower()
    assert await refused(
        infra.nats_url, subjects.of(PageCrawled), user="gateway", password=pw["gateway"]
    )
    assert await refused(
        infra.nats_url,
        f"$JS.API.STREAM.DELETE.{subjects.stream}",
        user="crawler",
        password=pw["crawler"],
    )
    assert (
        await refused(
            infra.nats_url,
            subjects.of(TextTranslated),
            user="translator",
            password=pw["translator"],
        )
        is None
    )
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(infra.nats_url, allow_reconnect=False, max_reconnect_attempts=0)
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(
            infra.nats_url, user="translator", password=pw["crawler"], allow_reconnect=False
        )


@pytest.mark.slow
async def test_a_job_goes_through_the_five_services_each_with_its_own_nats_user(
    secured, infra: Infra, fixture_site
) -> None:
    secured_infra, ns = secured
    base = env_for(infra, ns) | {"NATS_URL": secured_infra.nats_url}
    services: dict[str, ServiceProcess] = {}
    for name in ("crawler", "translator", "generator", "monitor", "gateway"):
        port = free_port()
        # What `seoblog up` hands each service: its own NATS user and password.
        env = up.service_env(up.Service(name, [], port), secured_infra, base["SEOBLOG_EVENT_KEY"])
        assert env["NATS_USER"] == name
        mine = base | {"NATS_USER": env["NATS_USER"], "NATS_PASSWORD": env["NATS_PASSWORD"]}
        services[name] = ServiceProcess(name, port, mine)
    stack = Stack(services)
    try:
        for svc in services.values():
            svc.start()
        stack.wait_ready(60)
        async with httpx.AsyncClient(timeout=10) as client:
            submitted = await client.post(
                f"{stack.gateway}/v1/jobs",
                json={
                    "url": fixture_site.article_url(ARTICLE),
                    "keywords": ["water plumes"],
                    "target_language": "en",
                    "length": 400,
                },
            )
            assert submitted.status_code == 202, submitted.text
            job_url = f"{stack.gateway}/v1/jobs/{submitted.json()['id']}"

            async def finished() -> dict[str, Any] | None:
                job: dict[str, Any] = (await client.get(job_url)).json()
                return job if job["state"] in {"completed", "failed", "cancelled"} else None

            job = await wait_until(finished, timeout_s=60, interval_s=0.2)
        assert job["state"] == "completed", (job, stack.logs())
        logs = stack.logs(tail=200_000).lower()
        assert "permissions violation" not in logs
        assert "authorization violation" not in logs
    finally:
        stack.stop()
