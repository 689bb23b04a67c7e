"""Start real service processes for system tests (`python -m <service>`), wait until they are
ready, keep their output for the failure report, kill -9 and restart them (chaos), and stop
them. A service may run as several replicas, each its own process and port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

SERVICES = ("crawler", "translator", "generator", "monitor", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """One process of a service. `name` is unique in a stack ("generator-2" for a replica);
    `module` is the service it runs (defaults to `name`)."""

    name: str
    port: int
    env: dict[str, str]
    module: str = ""
    process: subprocess.Popen[bytes] | None = None
    log: tempfile._TemporaryFileWrapper[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    def __post_init__(self) -> None:
        self.module = self.module or self.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (again, after a kill: the same port, the log continues)."""
        if self.log is None:
            self.log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log")  # noqa: SIM115
        prefix = self.module.upper()
        env = (
            os.environ
            | self.env
            | {
                f"{prefix}_PORT": str(self.port),
                f"{prefix}_HOST": "127.0.0.1",
                "OTEL_SERVICE_NAME": self.module,
            }
        )
        self.starts += 1
        if self.starts > 1:
            self.log.write(f"\n===== restart {self.starts - 1} =====\n".encode())
            self.log.flush()
        # Its own process group, so a kill -9 takes the service's worker processes too.
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", self.module],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """kill -9 the process and its group, as a crash or an OOM kill would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def ready(self, client: httpx.Client) -> bool:
        try:
            return client.get(f"{self.url}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 10, *, signalled: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if not signalled:  # a second SIGTERM would make uvicorn skip its graceful shutdown
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        # Worker processes left in the group (extraction pools) go with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Stack:
    services: dict[str, ServiceProcess]

    @property
    def gateway(self) -> str:
        return self.services["gateway"].url

    def replicas(self, module: str) -> list[ServiceProcess]:
        return [s for s in self.services.values() if s.module == module]

    def logs(self, tail: int = 6000) -> str:
        return "\n".join(
            f"===== {s.name} =====\n{s.output()[-tail:]}" for s in self.services.values()
        )

    def wait_ready(self, timeout_s: float = 60, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(names or self.services)
        with httpx.Client(timeout=2) as client:
            while pending:
                for name in sorted(pending):
                    svc = self.services[name]
                    assert svc.process is not None
                    if svc.process.poll() is not None:
                        raise RuntimeError(f"{name} exited early\n{self.logs()}")
                    if svc.ready(client):
                        pending.discard(name)
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(f"not ready in {timeout_s} s: {pending}\n{self.logs()}")
                time.sleep(0.2)

    def stop(self, timeout_s: float = 10) -> None:
        """SIGTERM every process at once, then wait for each (kill -9 after `timeout_s`)."""
        running = [s for s in reversed(list(self.services.values())) if s.alive]
        for svc in running:
            assert svc.process is not None
            svc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for svc in running:
            svc.stop(max(0.1, deadline - time.monotonic()), signalled=True)


def build_stack(
    env: dict[str, str],
    names: tuple[str, ...] = SERVICES,
    replicas: Mapping[str, int] | None = None,
) -> Stack:
    """The processes of a stack, not started: `replicas` maps a service to its process count."""
    services: dict[str, ServiceProcess] = {}
    for module in names:
        for i in range((replicas or {}).get(module, 1)):
            name = module if i == 0 else f"{module}-{i + 1}"
            services[name] = ServiceProcess(name, free_port(), env, module)
    # The gateway reads post sources from the crawler (GET /v1/posts/{id}/source).
    if "crawler" in services and "GATEWAY_CRAWLER_URL" not in env:
        for gateway in (s for s in services.values() if s.module == "gateway"):
            gateway.env = gateway.env | {"GATEWAY_CRAWLER_URL": services["crawler"].url}
    return Stack(services)


@contextmanager
def running_stack(
    env: dict[str, str],
    names: tuple[str, ...] = SERVICES,
    replicas: Mapping[str, int] | None = None,
    ready_timeout_s: float = 60,
) -> Iterator[Stack]:
    """The named services as real processes sharing `env`; stopped on exit."""
    stack = build_stack(env, names, replicas)
    try:
        for svc in stack.services.values():
            svc.start()
        stack.wait_ready(ready_timeout_s)
        yield stack
    finally:
        stack.stop()
