"""Start real service processes for system tests (`python -m <service>`), wait until they are
ready, keep their output for the failure report, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
    name: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: tempfile._TemporaryFileWrapper[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-", suffix=".log")  # noqa: SIM115
        env = (
            os.environ
            | self.env
            | {
                f"{self.name.upper()}_PORT": str(self.port),
                f"{self.name.upper()}_HOST": "127.0.0.1",
                "OTEL_SERVICE_NAME": self.name,
            }
        )
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", self.name], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, timeout_s: float = 10) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Stack:
    services: dict[str, ServiceProcess]

    @property
    def gateway(self) -> str:
        return self.services["gateway"].url

    def logs(self) -> str:
        return "\n".join(
            f"===== {s.name} =====\n{s.output()[-6000:]}" for s in self.services.values()
        )

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(self.services)
        with httpx.Client(timeout=2) as client:
            while pending:
                for name in sorted(pending):
                    svc = self.services[name]
                    assert svc.process is not None
                    if svc.process.poll() is not None:
                        raise RuntimeError(f"{name} exited early\n{self.logs()}")
                    try:
                        if client.get(f"{svc.url}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(f"not ready in {timeout_s} s: {pending}\n{self.logs()}")
                time.sleep(0.2)


@contextmanager
def running_stack(env: dict[str, str], names: tuple[str, ...] = SERVICES) -> Iterator[Stack]:
    """The named services as real processes sharing `env`; stopped on exit."""
    stack = Stack({name: ServiceProcess(name, free_port(), env) for name in names})
    try:
        for svc in stack.services.values():
            svc.start()
        stack.wait_ready()
        yield stack
    finally:
        for svc in reversed(list(stack.services.values())):
            svc.stop()
