"""Private infrastructure for chaos tests: NATS servers (one, or a 3-node JetStream cluster) and
a PostgreSQL server, on loopback ports of their own, that a test may kill -9, stop and restart
without touching the machine's servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from seoblog_devstack.infra import free_port, nats_server_binary


def _wait(process: subprocess.Popen[bytes], ready: object, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if callable(ready) and ready():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout_s} s")


class _Managed:
    """A server process we start, kill -9, stop and start again on the same port and data."""

    name = "server"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path

    def command(self) -> list[str]:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def popen_kwargs(self) -> dict[str, object]:
        return {}

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, wait: bool = True, timeout_s: float = 30) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, our own arguments
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **self.popen_kwargs(),  # type: ignore[call-overload]
            )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 30) -> None:
        assert self.process is not None
        _wait(self.process, self.healthy, self.name, timeout_s)

    def kill(self) -> None:
        """kill -9: no shutdown, no flush; what a crash or a lost machine does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 15) -> None:
        """A clean shutdown (SIGINT: PostgreSQL's fast shutdown, NATS's lame-duck-free stop)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""


class NatsServer(_Managed):
    """One nats-server with JetStream; a cluster node when `routes` are given."""

    def __init__(
        self,
        data_dir: Path,
        *,
        name: str = "nats",
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: list[str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.monitor_port = free_port()
        self.data_dir = data_dir
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = routes or []
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(nats_server_binary()), "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        cmd += ["-m", str(self.monitor_port), "-sd", str(self.data_dir / "js"), "-n", self.name]
        if self.cluster_name and self.cluster_port:
            cmd += ["--cluster_name", self.cluster_name]
            cmd += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            cmd += ["--routes", ",".join(self.routes)]
        return cmd

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.monitor_port}/healthz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class NatsCluster:
    """Three (or `size`) JetStream nodes routed to each other on loopback."""

    def __init__(self, root: Path, size: int = 3, name: str = "seoblog") -> None:
        cluster_ports = [free_port() for _ in range(size)]
        self.nodes = [
            NatsServer(
                root / f"n{i + 1}",
                name=f"n{i + 1}",
                cluster_name=name,
                cluster_port=port,
                routes=[f"nats://127.0.0.1:{p}" for p in cluster_ports if p != port],
            )
            for i, port in enumerate(cluster_ports)
        ]

    @property
    def url(self) -> str:
        """The first node's URL: clients learn the others from it (and fail over to them)."""
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout_s: float = 60) -> Self:
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _postgres_bin(tool: str) -> str:
    found = shutil.which(tool)
    if found:
        return found
    with contextlib.suppress(ImportError):
        import pgserver  # the embedded PostgreSQL the devstack uses ships the binaries

        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / tool
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{tool} not found (PostgreSQL binaries or pgserver)")


class PostgresServer(_Managed):
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, no fsync: data is disposable).
    Runs as the `postgres` user when we are root, as PostgreSQL refuses to run as root."""

    name = "postgres"

    def __init__(self, data_dir: Path, *, max_connections: int = 200) -> None:
        self.root = data_dir
        self.pgdata = data_dir / "pgdata"
        self.sockets = data_dir / "sock"
        self.port = free_port()
        self.max_connections = max_connections
        self.log_path = data_dir / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        data_dir.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self.user:
            for path in (data_dir, self.sockets):
                shutil.chown(path, self.user)
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(  # noqa: S603 - fixed binary
                [_postgres_bin("initdb"), "-D", str(self.pgdata), "-U", "postgres", "-A", "trust"],
                check=True,
                capture_output=True,
                user=self.user,
            )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def popen_kwargs(self) -> dict[str, object]:
        return {"user": self.user} if self.user else {}

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "max_connections": str(self.max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        cmd = [_postgres_bin("postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        cmd += ["-k", str(self.sockets)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def healthy(self) -> bool:
        done = subprocess.run(  # noqa: S603 - fixed binary
            [_postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            capture_output=True,
        )
        return done.returncode == 0


def scratch_dir(prefix: str = "seoblog-chaos-") -> Path:
    """A fresh temporary folder (the caller removes it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # the postgres user must reach its data folder inside
    return path
