"""The seoblog CLI against a stand-in gateway, and `seoblog up` with stand-in services."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from seoblog_devstack import cli, up
from seoblog_devstack.infra import free_port, process_running

# A job's life as the stand-in gateway shows it, one step per GET.
COMPLETED_SCRIPT = [
    ("queued", None),
    ("crawling", ("crawl", 40, "fetching page")),
    ("translating", ("translate", 70, "translating")),
    ("generating", ("generate", 90, "writing")),
    ("completed", None),
]
FAILED_SCRIPT = [("queued", None), ("crawling", ("crawl", 10, "fetching page")), ("failed", None)]
POST = {
    "id": "post-1",
    "title": "서울 여행 가이드",
    "slug": "seoul-travel-guide",
    "seo": {"score": 87, "checks": []},
    "markdown": "# 서울 여행 가이드\n\n본문.",
}


class StandInGateway:
    """A tiny ASGI gateway that moves each job one state further on every GET."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []

    def job_document(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        script = FAILED_SCRIPT if "fail" in job["spec"]["url"] else COMPLETED_SCRIPT
        state, progress = script[min(self.steps[job_id], len(script) - 1)]
        done = state == "completed"
        return {
            **job,
            "state": state,
            "progress": (
                {"stage": progress[0], "percent": progress[1], "message": progress[2]}
                if progress
                else None
            ),
            "error": (
                {
                    "code": "fetch_refused",
                    "message": "robots.txt disallows this page",
                    "stage": "crawl",
                    "retryable": False,
                }
                if state == "failed"
                else None
            ),
            "post_id": POST["id"] if done else None,
            "post": POST if done else None,
            "links": {
                "self": f"/v1/jobs/{job_id}",
                "post": f"/v1/posts/{POST['id']}" if done else None,
            },
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        payload = json.loads(body) if body else None
        method, path = scope["method"], scope["path"]
        self.requests.append((method, path, headers, payload))
        status, document, content_type = self.route(method, path, scope, payload)
        data = document.encode() if isinstance(document, str) else json.dumps(document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def route(
        self, method: str, path: str, scope: dict[str, Any], payload: Any
    ) -> tuple[int, Any, str]:
        as_json = "application/json"
        if method == "POST" and path == "/v1/jobs":
            if not str(payload.get("url", "")).startswith("http"):
                error = {"code": "invalid_url", "message": "url must be http(s)", "field": "url"}
                return 422, {"error": error}, as_json
            job_id = f"job-{len(self.jobs) + 1}"
            now = "2025-01-01T00:00:00Z"
            self.jobs[job_id] = {
                "id": job_id,
                "spec": payload,
                "created_at": now,
                "updated_at": now,
                "history": [{"state": "queued", "at": now}],
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            }
            self.steps[job_id] = 0
            return 202, self.job_document(job_id), as_json
        if method == "GET" and path.startswith("/v1/jobs/"):
            job_id = path.rsplit("/", 1)[1]
            if job_id not in self.jobs:
                return 404, {"error": {"code": "job_not_found", "message": job_id}}, as_json
            self.steps[job_id] += 1
            return 200, self.job_document(job_id), as_json
        if method == "GET" and path == f"/v1/posts/{POST['id']}":
            fmt = dict(
                pair.split("=", 1) for pair in scope["query_string"].decode().split("&") if pair
            ).get("format", "json")
            if fmt == "markdown":
                return 200, POST["markdown"], "text/markdown; charset=utf-8"
            return 200, POST, as_json
        return 404, {"error": {"code": "not_found", "message": f"no route {path}"}}, as_json


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, StandInGateway]]:
    app = StandInGateway()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "POLL_INTERVAL", 0.05)
    monkeypatch.delenv("SEOBLOG_API_KEY", raising=False)


def test_submit_wait_shows_live_progress_and_where_to_read_the_post(
    gateway: tuple[str, StandInGateway],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, app = gateway
    monkeypatch.setenv("SEOBLOG_API_KEY", "key-123")
    argv = ["submit", "https://example.com/a", "--keywords", "k1, k2", "--lang", "ko"]

    code = cli.main([*argv, "--wait", "--gateway", url])

    captured = capsys.readouterr()
    out = captured.out
    assert code == 0
    lines = captured.err.splitlines()  # progress goes to stderr, results to stdout
    progress = [line.split()[0] for line in lines[0:4]]
    assert progress == ["queued", "crawling", "translating", "generating"]
    assert any(line.startswith("crawling") and " 40%" in line for line in lines)
    assert "title:     서울 여행 가이드" in out
    assert "SEO score: 87/100" in out
    assert f"read it:   {url}/v1/posts/post-1\n" in out
    assert f"markdown:  {url}/v1/posts/post-1?format=markdown" in out
    _, _, headers, payload = next(r for r in app.requests if r[0] == "POST")
    assert payload == {
        "url": "https://example.com/a",
        "keywords": ["k1", "k2"],
        "target_language": "ko",
        "length": 800,
        "priority": "normal",
    }
    assert headers["x-api-key"] == "key-123"
    assert headers["authorization"] == "Bearer key-123"


def test_submit_sends_the_idempotency_key_header_and_the_callback_url(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, app = gateway
    argv = ["submit", "https://example.com/a", "--lang", "ko", "--gateway", url]
    hook = "https://hooks.example.com/x"

    code = cli.main([*argv, "--idempotency-key", "order-1", "--callback-url", hook])

    assert code == 0, capsys.readouterr().err
    _, _, headers, payload = [r for r in app.requests if r[0] == "POST"][-1]
    assert headers["idempotency-key"] == "order-1"
    assert payload["callback_url"] == hook
    assert "authorization" not in headers


def test_submit_wait_on_a_failed_job_prints_the_error_and_exits_1(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = gateway
    argv = ["submit", "https://example.com/fail", "--lang", "ko", "--wait", "--gateway", url]

    code = cli.main(argv)

    captured = capsys.readouterr()
    assert code == 1
    assert "crawling     10%  fetching page" in captured.err
    assert "fetch_refused: robots.txt disallows this page" in captured.err


def test_submit_without_wait_prints_the_job_and_how_to_follow_it(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = gateway

    code = cli.main(["submit", "https://example.com/b", "--lang", "de", "--gateway", url])

    out = capsys.readouterr().out
    assert code == 0
    assert " queued" in out.splitlines()[0]
    assert "seoblog status job-" in out


def test_a_gateway_error_shows_its_code_and_message_and_exits_2(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = gateway

    code = cli.main(["submit", "ftp://example.com/x", "--lang", "ko", "--gateway", url])

    assert code == 2
    assert "error: invalid_url: url must be http(s)" in capsys.readouterr().err


def test_status_of_an_unknown_job_exits_2(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = gateway

    assert cli.main(["status", "nope", "--gateway", url]) == 2
    assert "job_not_found" in capsys.readouterr().err


def test_status_prints_a_summary_of_the_job(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = gateway
    cli.main(["submit", "https://example.com/c", "--lang", "ko", "--gateway", url])
    job_id = capsys.readouterr().out.split()[1]

    code = cli.main(["status", job_id, "--gateway", url])

    out = capsys.readouterr().out
    assert code == 0
    assert f"job      {job_id}" in out
    assert "state    crawling     40%  fetching page" in out
    assert "trace    4bf92f3577b34da6a3ce929d0e0e4736" in out


def test_post_prints_markdown_or_json(
    gateway: tuple[str, StandInGateway], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = gateway

    assert cli.main(["post", "post-1", "--gateway", url]) == 0
    assert capsys.readouterr().out == "# 서울 여행 가이드\n\n본문.\n"
    assert cli.main(["post", "post-1", "--format", "json", "--gateway", url]) == 0
    assert json.loads(capsys.readouterr().out)["seo"]["score"] == 87


def test_an_unreachable_gateway_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    gateway = f"http://127.0.0.1:{free_port()}"

    assert cli.main(["status", "job-1", "--gateway", gateway]) == 2
    assert "error: unreachable: cannot reach" in capsys.readouterr().err


# --- seoblog up, with stand-in services -------------------------------------------------

STAND_IN = textwrap.dedent(
    """
    import hashlib, http.server, os, sys, pathlib, time

    name, mode, pid_dir = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    (pid_dir / f"{name}.pid").write_text(str(os.getpid()))
    key = os.environ["SEOBLOG_EVENT_KEY"].encode()
    (pid_dir / f"{name}.key").write_text(hashlib.sha256(key).hexdigest())
    print(f"{name} sees NATS_URL={os.environ['NATS_URL']}")
    print(f"{name} sees REDIS_URL={os.environ['REDIS_URL']!r}")
    print(f"{name} sees GATEWAY_OPEN_MODE={os.environ['GATEWAY_OPEN_MODE']}")
    if mode == "crash":
        time.sleep(1)  # the others are up by now
        print("boom: cannot start")
        sys.exit(3)

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = int(os.environ[f"{name.upper()}_PORT"])
    print(f"{name} listening on {port}")
    http.server.HTTPServer(("127.0.0.1", port), Ready).serve_forever()
    """
)


class Launcher:
    """`python -m seoblog_devstack up` in a subprocess, with its output lines in a queue."""

    def __init__(
        self,
        tmp_path: Path,
        services: dict[str, str],
        gateway_port: int,
        *,
        spec: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        script = tmp_path / "stand_in.py"
        script.write_text(STAND_IN)
        spec = spec or ",".join(
            f"{name}={sys.executable} {script} {name} {mode} {tmp_path}"
            for name, mode in services.items()
        )
        env = dict(os.environ, **(extra_env or {}), SEOBLOG_SERVICES=spec, PYTHONUNBUFFERED="1")
        env.pop("SEOBLOG_EMBEDDED", None)
        cmd = [sys.executable, "-m", "seoblog_devstack", "up", "--data-dir", str(tmp_path / "d")]
        self.process = subprocess.Popen(
            [*cmd, "--port", str(gateway_port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError("no such line; output so far:\n" + "\n".join(self.seen))

    def finish(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        time.sleep(0.2)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


@pytest.mark.slow
def test_seoblog_up_starts_the_services_and_stops_them_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        launcher = Launcher(tmp_path, {"crawler": "serve", "gateway": "serve"}, taken_port)
        try:
            moved = launcher.wait_for(lambda line: line.startswith(f"port {taken_port} is taken"))
            gateway_port = int(moved.rsplit(" ", 1)[1])
            launcher.wait_for(lambda line: line.startswith("seoblog is up"))
            launcher.wait_for(lambda line: line.startswith("try: seoblog submit URL"), timeout=5)
            pids = {n: int((tmp_path / f"{n}.pid").read_text()) for n in ("crawler", "gateway")}
            launcher.process.send_signal(signal.SIGTERM)
            code = launcher.finish()
        finally:
            if launcher.process.poll() is None:
                launcher.process.kill()

    output = "\n".join(launcher.seen)
    assert code == 0, output
    assert f"seoblog is up: http://127.0.0.1:{gateway_port}" in output
    assert "crawler    | crawler sees NATS_URL=nats://" in output
    assert "gateway    | gateway sees GATEWAY_OPEN_MODE=1" in output
    assert "stopping " in output
    assert all(not process_running(pid) for pid in pids.values())


@pytest.mark.slow
def test_seoblog_up_restarts_a_service_that_keeps_dying_with_growing_delays(
    tmp_path: Path,
) -> None:
    launcher = Launcher(tmp_path, {"gateway": "serve", "crawler": "crash"}, free_port())
    try:
        launcher.wait_for(lambda line: "crawler exited with code 3; restarting in 0.5s" in line)
        launcher.wait_for(lambda line: "crawler exited with code 3; restarting in 1s" in line)
        gateway_pid = int((tmp_path / "gateway.pid").read_text())
        assert process_running(gateway_pid), "one dying service stopped the others"
        launcher.process.send_signal(signal.SIGTERM)
        code = launcher.finish()
    finally:
        if launcher.process.poll() is None:
            launcher.process.kill()

    output = "\n".join(launcher.seen)
    assert code == 0, output
    assert "crawler    | boom: cannot start" in output
    assert "(restart 2)" in output
    assert not process_running(gateway_pid)


@pytest.mark.slow
def test_seoblog_up_brings_back_a_service_killed_with_sigkill(tmp_path: Path) -> None:
    launcher = Launcher(tmp_path, {"crawler": "serve", "gateway": "serve"}, free_port())
    try:
        launcher.wait_for(lambda line: line.startswith("seoblog is up"))
        killed = int((tmp_path / "crawler.pid").read_text())
        os.kill(killed, signal.SIGKILL)
        launcher.wait_for(
            lambda line: line == "crawler was killed by SIGKILL; restarting in 0.5s (restart 1)"
        )
        again = launcher.wait_for(lambda line: line.startswith("crawler ready again on :"))
        port = int(again.rsplit(":", 1)[1])
        restarted = int((tmp_path / "crawler.pid").read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.0 200")
        launcher.process.send_signal(signal.SIGTERM)
        code = launcher.finish()
    finally:
        if launcher.process.poll() is None:
            launcher.process.kill()

    output = "\n".join(launcher.seen)
    assert code == 0, output
    assert restarted != killed
    assert not process_running(restarted)


@pytest.mark.slow
def test_seoblog_up_gives_every_service_the_data_dirs_event_key_and_never_prints_it(
    tmp_path: Path,
) -> None:
    launcher = Launcher(tmp_path, {"crawler": "serve", "gateway": "serve"}, free_port())
    try:
        launcher.wait_for(lambda line: line.startswith("seoblog is up"))
        launcher.process.send_signal(signal.SIGTERM)
        code = launcher.finish()
    finally:
        if launcher.process.poll() is None:
            launcher.process.kill()

    key_file = tmp_path / "d" / "event.key"
    key = key_file.read_text().strip()
    assert code == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert (tmp_path / "crawler.key").read_text() == digest
    assert (tmp_path / "gateway.key").read_text() == digest
    assert key not in "\n".join(launcher.seen)


def test_event_key_is_made_once_per_data_dir_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEOBLOG_EVENT_KEY", raising=False)
    first = up.event_key(tmp_path / "a")
    (tmp_path / "a" / "event.key").chmod(0o644)

    assert up.event_key(tmp_path / "a") == first
    assert stat.S_IMODE((tmp_path / "a" / "event.key").stat().st_mode) == 0o600
    assert up.event_key(tmp_path / "b") != first
    assert len(bytes.fromhex(first)) == 32


def test_an_event_key_in_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEOBLOG_EVENT_KEY", "chosen-by-the-developer")

    assert up.event_key(tmp_path) == "chosen-by-the-developer"
    assert not (tmp_path / "event.key").exists()


@pytest.mark.slow
def test_seoblog_up_brings_back_a_real_service_killed_with_sigkill(
    tmp_path: Path, service_env: dict[str, str]
) -> None:
    # The real monitor on the session's infrastructure, in this test's namespace.
    spec = f"monitor={sys.executable} -m monitor"
    launcher = Launcher(tmp_path, {}, free_port(), spec=spec, extra_env=service_env)
    process = launcher.process
    try:
        ready = launcher.wait_for(lambda line: line.startswith("monitor ready on :"), 60)
        port = int(ready.rsplit(":", 1)[1])
        pid = next(p for p in _children(process.pid) if "monitor" in _cmdline(p))
        os.kill(pid, signal.SIGKILL)
        launcher.wait_for(lambda line: line.startswith("monitor was killed by SIGKILL"))
        launcher.wait_for(lambda line: line == f"monitor ready again on :{port}", 60)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        code = launcher.finish()
    finally:
        if process.poll() is None:
            process.kill()

    assert code == 0, "\n".join(launcher.seen)
    assert not process_running(pid)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_services_log_readable_lines_on_a_terminal_and_json_when_piped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from seoblog_devstack.infra import Infra

    monkeypatch.delenv("SEOBLOG_LOG_FORMAT", raising=False)
    service = up.Service("crawler", ["true"], 8001)
    infra = Infra(nats_url="nats://x", database_url="postgresql://x", redis_url=None)
    assert up.service_env(service, infra, "k", terminal=True)["SEOBLOG_LOG_FORMAT"] == "console"
    assert "SEOBLOG_LOG_FORMAT" not in up.service_env(service, infra, "k", terminal=False)
    monkeypatch.setenv("SEOBLOG_LOG_FORMAT", "json")  # the user's choice wins
    assert up.service_env(service, infra, "k", terminal=True)["SEOBLOG_LOG_FORMAT"] == "json"


def test_a_usage_error_names_the_missing_option_on_stderr_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["submit", "https://example.com/a"]) == 2
    captured = capsys.readouterr()
    assert "Missing option '--lang'" in captured.err
    assert captured.out == ""


def test_keys_generate_json_prints_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["keys", "generate", "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    assert key.startswith(cli.KEY_PREFIX)


def test_shell_completion_script_is_printed_for_bash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's shell is found from the process tree; under pytest, say which it is.
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    assert cli.main(["--show-completion"]) == 0
    script = capsys.readouterr().out
    assert "_seoblog_completion()" in script
    assert "complete " in script
