"""`seoblog up`: find or start the infrastructure, then run and supervise the five services.

A service that exits is restarted with capped back-off; only Ctrl-C or SIGTERM stops the stack.

Developer knob: SEOBLOG_SERVICES="name=command,..." runs exactly those commands instead of
`python -m <name>` for the five services (used to test this launcher with stand-ins).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ipaddress
import json
import logging
import os
import secrets
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
from typing import IO

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
# Delay before restarting a service that exited, by how many times in a row it exited early.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# A service that ran this long before exiting is restarted at the first step again.
STABLE_AFTER_S = 30.0
EVENT_KEY_FILE = "event.key"
TAIL_LINES = 40
# Every service binds this unless `--host` says otherwise: the gateway runs in open mode here
# (every caller is admin), which only loopback makes safe.
LOOPBACK = "127.0.0.1"
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
    ready: bool = False
    started_at: float = 0.0
    restarts: int = 0
    early_exits: int = 0
    restart_at: float | None = None
    host: str = LOOPBACK
    # Where the other services listen (wire): set unless the environment says otherwise.
    peers: dict[str, str] = field(default_factory=dict)

    @property
    def ready_url(self) -> str:
        return f"http://{reachable(self.host)}:{self.port}/readyz"


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


def reachable(host: str) -> str:
    """Where this machine reaches a server bound to `host` (a wildcard means loopback too)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - we only connect to it
        return LOOPBACK
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def wire(services: list[Service]) -> None:
    """Tell the services where the others listen, on their actual ports: the gateway reads post
    sources from the crawler (GATEWAY_CRAWLER_URL), the monitor scrapes the others' /metrics
    for service_down and llm_breaker_open (MONITOR_SERVICES)."""
    urls = {s.name: f"http://{reachable(s.host)}:{s.port}" for s in services if s.name in SERVICES}
    for service in services:
        if service.name == "gateway" and "crawler" in urls:
            service.peers["GATEWAY_CRAWLER_URL"] = urls["crawler"]
        if service.name == "monitor":
            scraped = {name: url for name, url in urls.items() if name != "monitor"}
            service.peers["MONITOR_SERVICES"] = json.dumps(scraped)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: a port with only TIME_WAIT connections left is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def event_key(data_dir: Path) -> str:
    """The data dir's HMAC key for event signatures: made once, kept in a 0600 file.

    SEOBLOG_EVENT_KEY in our own environment wins (a key the developer chose).
    """
    chosen = os.environ.get("SEOBLOG_EVENT_KEY", "").strip()
    if chosen:
        return chosen
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / EVENT_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # tighten a file someone loosened
        key = path.read_text().strip()
        if key:
            return key
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def service_env(
    service: Service, infra: Infra, key: str, *, terminal: bool = False
) -> dict[str, str]:
    """What a service runs with. On a terminal (`terminal`), its logs are readable one-line
    records unless SEOBLOG_LOG_FORMAT says otherwise; piped or in a container, JSON lines."""
    env = dict(os.environ)
    if terminal:
        env.setdefault("SEOBLOG_LOG_FORMAT", "console")
    env.update(
        NATS_URL=infra.nats_url,
        DATABASE_URL=infra.database_url,
        REDIS_URL=infra.redis_url or "",
        GATEWAY_OPEN_MODE="1",
        PYTHONUNBUFFERED="1",
        SEOBLOG_EVENT_KEY=key,
    )
    env[f"{service.name.upper()}_PORT"] = str(service.port)
    env[f"{service.name.upper()}_HOST"] = service.host
    for name, value in service.peers.items():
        env.setdefault(name, value)
    # The service's own NATS user (its subject permissions), when the embedded NATS has them.
    password = (infra.nats_passwords or {}).get(service.name)
    if password is not None:
        env.update(NATS_USER=service.name, NATS_PASSWORD=password)
    return env


def _pump(service: Service, stream: IO[bytes], console: Console) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n")
        service.tail.append(line)
        console.service_line(service.name, line)
    stream.close()


def start_service(service: Service, infra: Infra, console: Console, key: str) -> None:
    # Own session: a Ctrl-C in the terminal reaches only us, and we stop the services in order.
    service.ready = False
    service.restart_at = None
    service.started_at = time.monotonic()
    service.process = subprocess.Popen(  # noqa: S603 - our own commands
        service.command,
        env=service_env(service, infra, key, terminal=console.colour),
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


def _answers_ready(client: httpx.Client, service: Service) -> bool:
    try:
        return client.get(service.ready_url).status_code == 200
    except httpx.HTTPError:
        return False


def restart_delay(service: Service, ran_s: float) -> float:
    """Capped back-off: longer for each early exit in a row, from the start after a good run."""
    service.early_exits = 0 if ran_s >= STABLE_AFTER_S else service.early_exits + 1
    return RESTART_BACKOFF_S[min(max(service.early_exits - 1, 0), len(RESTART_BACKOFF_S) - 1)]


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """True once the process has exited; it stays a zombie (not reaped), so its pid, which
    names its process group, cannot be reused before _note_exit kills what it left behind."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return process.poll() is not None


def _note_exit(service: Service, console: Console, now: float) -> None:
    assert service.process is not None
    _signal_group(service.process, signal.SIGKILL)  # children it left behind (workers)
    code = service.process.wait()
    if service.pump is not None:
        service.pump.join(timeout=2)
    delay = restart_delay(service, now - service.started_at)
    service.process, service.ready, service.restart_at = None, False, now + delay
    service.restarts += 1
    how = f"exited with code {code}"
    if code < 0:
        with contextlib.suppress(ValueError):
            how = f"was killed by {signal.Signals(-code).name}"
    console.say(f"{service.name} {how}; restarting in {delay:g}s (restart {service.restarts})")


def supervise(
    services: list[Service],
    infra: Infra,
    key: str,
    console: Console,
    stop: threading.Event,
    ready_timeout: float = READY_TIMEOUT,
) -> None:
    """Run the services until a stop request: restart those that exit, report readiness."""
    began = time.monotonic()
    announced = warned = False
    last_shown = ""
    with httpx.Client(timeout=1.0) as client:
        while not stop.is_set():
            now = time.monotonic()
            for service in services:
                if service.process is None:
                    if service.restart_at is not None and now >= service.restart_at:
                        start_service(service, infra, console, key)
                    continue
                if _exited(service.process):
                    _note_exit(service, console, now)
                elif not service.ready and _answers_ready(client, service):
                    service.ready = True
                    again = " again" if service.restarts else ""
                    console.say(f"{service.name} ready{again} on :{service.port}")
            pending = [s for s in services if not s.ready]
            if not pending and not announced:
                announce(services, console)
                announced = True
            elif pending and not announced:
                elapsed = time.monotonic() - began
                if elapsed > ready_timeout and not warned:
                    warned = True
                    names = ", ".join(s.name for s in pending)
                    console.say(f"still not ready after {ready_timeout:.0f}s: {names}")
                    for service in pending:
                        console.say(f"last output of {service.name}:")
                        for line in service.tail:
                            console.say(f"  {line}")
                shown = f"starting: {', '.join(s.name for s in pending)}"
                if console.colour:
                    console.status(f"{shown} ({elapsed:.0f}s)")
                elif shown != last_shown:
                    console.status(shown)
                last_shown = shown
            # Quick while something is starting; a calm pace once all is up.
            stop.wait(0.05 if pending or not announced else 0.25)


def run(
    data_dir: Path, gateway_port: int, ready_timeout: float = READY_TIMEOUT, host: str = LOOPBACK
) -> int:
    """Run the stack until Ctrl-C or SIGTERM (0); 2 for a bad SEOBLOG_SERVICES."""
    console = Console(sys.stdout)
    try:
        services = parse_services(os.environ.get("SEOBLOG_SERVICES"), gateway_port)
    except ValueError as exc:
        console.say(f"error: {exc}")
        return 2
    for service in services:
        service.host = host
    if not is_loopback(host):
        console.say(
            f"warning: binding {host}: the gateway runs in open mode (every caller is admin) "
            "and refuses a non-loopback address unless GATEWAY_OPEN_MODE_FORCE=true"
        )
    for service in services:
        if not port_is_free(service.port):
            wanted, service.port = service.port, free_port()
            console.say(f"port {wanted} is taken; {service.name} uses {service.port}")
    wire(services)

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # SIGHUP too: a closed terminal stops the stack in order (services, then the embedded
    # servers, which run in sessions of their own and would otherwise be left behind).
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, request_stop) for sig in stopping}
    infra: Infra | None = None
    try:
        key = event_key(data_dir)
        infra = ensure_infra(data_dir, nats_auth=True)
        if stop.is_set():
            return 0
        for service in services:
            start_service(service, infra, console, key)
        supervise(services, infra, key, console, stop, ready_timeout)
    finally:
        stop_services(services, console)
        if infra is not None:
            stop_infra(infra)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.say("stopped")
    return 0


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
    parser.add_argument(
        "--host",
        default=LOOPBACK,
        help="address every service binds (default 127.0.0.1; the gateway is in open mode, "
        "so another address needs GATEWAY_OPEN_MODE_FORCE=true)",
    )


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="devstack   | %(message)s")
    for chatty in ("pgserver", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return run(args.data_dir, args.port, host=args.host)
