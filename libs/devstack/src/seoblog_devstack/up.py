"""`seoblog up`: find or start the infrastructure, then run the five services as processes.

Developer knob: SEOBLOG_SERVICES="name=command,..." runs exactly those commands instead of
`python -m <name>` for the five services (used to test this launcher with stand-ins).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Literal

import httpx

from seoblog_devstack.infra import Infra, ensure_infra, free_port, stop_infra

SERVICES = ("crawler", "translator", "generator", "monitor", "gateway")
DEFAULT_PORTS = {
    "gateway": 8000,
    "crawler": 8001,
    "translator": 8002,
    "generator": 8003,
    "monitor": 8004,
}
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TAIL_LINES = 40
COLOURS = {"crawler": 36, "translator": 35, "generator": 33, "monitor": 34, "gateway": 32}


@dataclass
class Service:
    """One service process and what we know about it."""

    name: str
    command: list[str]
    port: int
    process: subprocess.Popen[bytes] | None = None
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=TAIL_LINES)
    )
    pump: threading.Thread | None = None

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"


class Console:
    """Writes the launcher's own lines and the services' prefixed output without interleaving."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.colour = stream.isatty()
        self.lock = threading.Lock()
        self.width = max(len(name) for name in SERVICES)
        self._status_shown = False

    def prefix(self, name: str) -> str:
        label = name.ljust(self.width)
        if self.colour:
            return f"\x1b[{COLOURS.get(name, 37)}m{label}\x1b[0m | "
        return f"{label} | "

    def service_line(self, name: str, line: str) -> None:
        with self.lock:
            self._clear_status()
            self.stream.write(f"{self.prefix(name)}{line}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        with self.lock:
            self._clear_status()
            self.stream.write(f"{text}\n")
            self.stream.flush()

    def status(self, text: str) -> None:
        """One updating line on a terminal; a plain line elsewhere."""
        with self.lock:
            if self.colour:
                self.stream.write(f"\r\x1b[K{text}")
                self._status_shown = True
            else:
                self.stream.write(f"{text}\n")
            self.stream.flush()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False


def parse_services(spec: str | None, gateway_port: int) -> list[Service]:
    """The services to run: the five real ones, or those named in SEOBLOG_SERVICES."""
    ports = dict(DEFAULT_PORTS, gateway=gateway_port)
    if not spec:
        return [Service(n, [sys.executable, "-m", n], ports[n]) for n in SERVICES]
    services = []
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, command = item.partition("=")
        name = name.strip()
        if not sep or not name or not command.strip():
            raise ValueError(f"SEOBLOG_SERVICES entry {item!r} is not name=command")
        port = ports.get(name) or free_port()
        services.append(Service(name, shlex.split(command), port))
    return services


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: a port with only TIME_WAIT connections left is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def service_env(service: Service, infra: Infra) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        NATS_URL=infra.nats_url,
        DATABASE_URL=infra.database_url,
        REDIS_URL=infra.redis_url or "",
        GATEWAY_OPEN_MODE="1",
        PYTHONUNBUFFERED="1",
    )
    env[f"{service.name.upper()}_PORT"] = str(service.port)
    return env


def _pump(service: Service, stream: IO[bytes], console: Console) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n")
        service.tail.append(line)
        console.service_line(service.name, line)
    stream.close()


def start_service(service: Service, infra: Infra, console: Console) -> None:
    # Own session: a Ctrl-C in the terminal reaches only us, and we stop the services in order.
    service.process = subprocess.Popen(  # noqa: S603 - our own commands
        service.command,
        env=service_env(service, infra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert service.process.stdout is not None
    service.pump = threading.Thread(
        target=_pump, args=(service, service.process.stdout, console), daemon=True
    )
    service.pump.start()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # pid == process group id: start_new_session


def stop_services(services: list[Service], console: Console) -> None:
    """SIGTERM every service, wait up to STOP_TIMEOUT, then SIGKILL whatever is left."""
    running = [s for s in services if s.process is not None and s.process.poll() is None]
    if running:
        console.say(f"stopping {', '.join(s.name for s in running)}")
    for service in running:
        assert service.process is not None
        _signal_group(service.process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for service in running:
        assert service.process is not None
        try:
            service.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.say(f"{service.name} ignored SIGTERM for {STOP_TIMEOUT:.0f}s; killing it")
            _signal_group(service.process, signal.SIGKILL)
            service.process.wait()
    for service in services:
        if service.process is not None:
            _signal_group(service.process, signal.SIGKILL)  # stray children of the group
        if service.pump is not None:
            service.pump.join(timeout=2)


def report_exit(service: Service, console: Console) -> None:
    assert service.process is not None
    console.say(f"{service.name} exited with code {service.process.returncode}; last output:")
    if service.pump is not None:
        service.pump.join(timeout=2)
    for line in service.tail:
        console.say(f"  {line}")


def _answers_ready(client: httpx.Client, service: Service) -> bool:
    try:
        return client.get(service.ready_url).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_ready(
    services: list[Service], console: Console, stop: threading.Event, timeout: float
) -> Literal["ready", "stopped", "failed"]:
    """Wait until every service answers /readyz with 200, one exits, the deadline or a stop."""
    pending = list(services)
    began = time.monotonic()
    last_shown = ""
    with httpx.Client(timeout=1.0) as client:
        while pending:
            if stop.is_set():
                return "stopped"
            for service in list(pending):
                assert service.process is not None
                if service.process.poll() is not None:
                    report_exit(service, console)
                    return "failed"
                if _answers_ready(client, service):
                    pending.remove(service)
                    console.say(f"{service.name} ready on :{service.port}")
            elapsed = time.monotonic() - began
            if pending and elapsed > timeout:
                names = ", ".join(s.name for s in pending)
                console.say(f"still not ready after {timeout:.0f}s: {names}")
                for service in pending:
                    console.say(f"last output of {service.name}:")
                    for line in service.tail:
                        console.say(f"  {line}")
                return "failed"
            if pending:
                shown = f"starting: {', '.join(s.name for s in pending)}"
                if console.colour:
                    console.status(f"{shown} ({elapsed:.0f}s)")
                elif shown != last_shown:
                    console.status(shown)
                last_shown = shown
                stop.wait(0.25)
    return "ready"


def run(data_dir: Path, gateway_port: int, ready_timeout: float = READY_TIMEOUT) -> int:
    """Run the stack until Ctrl-C or SIGTERM; 0 on a requested stop, 1 when a service fails."""
    console = Console(sys.stdout)
    try:
        services = parse_services(os.environ.get("SEOBLOG_SERVICES"), gateway_port)
    except ValueError as exc:
        console.say(f"error: {exc}")
        return 2
    for service in services:
        if not port_is_free(service.port):
            wanted, service.port = service.port, free_port()
            console.say(f"port {wanted} is taken; {service.name} uses {service.port}")

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    infra: Infra | None = None
    code = 0
    try:
        infra = ensure_infra(data_dir)
        if stop.is_set():
            return 0
        for service in services:
            start_service(service, infra, console)
        outcome = wait_until_ready(services, console, stop, ready_timeout)
        if outcome == "ready":
            announce(services, console)
            code = supervise(services, console, stop)
        elif outcome == "failed":
            code = 1
    finally:
        stop_services(services, console)
        if infra is not None:
            stop_infra(infra)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.say("stopped")
    return code


def announce(services: list[Service], console: Console) -> None:
    gateway = next((s for s in services if s.name == "gateway"), None)
    if gateway is None:
        console.say("all services ready")
        return
    url = f"http://127.0.0.1:{gateway.port}"
    console.say(f"seoblog is up: {url}  (API docs {url}/docs)")
    hint = "seoblog submit URL --keywords k1,k2 --lang ko --wait"
    if gateway.port != DEFAULT_PORTS["gateway"]:
        hint += f" --gateway {url}"
    console.say(f"try: {hint}")


def supervise(services: list[Service], console: Console, stop: threading.Event) -> int:
    """Wait for a stop request (0) or for a service to exit on its own (1)."""
    while not stop.wait(0.5):
        for service in services:
            assert service.process is not None
            if service.process.poll() is not None:
                report_exit(service, console)
                return 1
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".seoblog"),
        help="where embedded NATS and PostgreSQL keep their data (default ./.seoblog)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORTS["gateway"], help="gateway port (default 8000)"
    )


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="devstack   | %(message)s")
    for chatty in ("pgserver", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return run(args.data_dir, args.port)
