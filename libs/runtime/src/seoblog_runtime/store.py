"""PostgreSQL access through asyncpg: one schema per service, versioned SQL migrations applied
at start-up under an advisory lock so replicas can start together."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from seoblog_contracts import Usage

log = logging.getLogger("seoblog.store")

_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _lock_key(schema: str) -> int:
    # A stable 63-bit key per schema; crc32 is enough to keep services from sharing a lock.
    return 0x5E0B_0000_0000 + zlib.crc32(schema.encode())


def list_migrations(directory: Path) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every NNNN_name.sql file, in order; rejects gaps and duplicates."""
    found: list[tuple[int, str, str]] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append((int(match.group(1)), path.name, path.read_text()))
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations in {directory} must be numbered 1..n, got {versions}")
    return found


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, without its round trip.

    asyncpg still rolls back a transaction left open and drops listeners before calling this;
    what it skips is `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` (6.5 % of the
    gateway's time). That is safe because no seoblog code leaves session state on a pooled
    connection: no session SET (search_path comes with the connection), no session advisory
    locks (migrations take theirs on a connection of their own), no LISTEN, no WITH HOLD
    cursors. Keep it so: use SET LOCAL and pg_advisory_xact_lock inside transactions."""


_LZ4_IF_SUPPORTED = (
    "SELECT 'lz4' FROM pg_settings"
    " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)


class StoreNotOpen(RuntimeError):
    """The store has not connected yet (PostgreSQL was down at start-up): answer 503."""


# PostgreSQL cannot be reached (down, restarting, refusing, a connection dropped mid-way, a
# pool that cannot hand out a connection in time): the same statement may succeed later.
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    StoreNotOpen,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # What asyncpg raises on a connection the server dropped mid-conversation.
    asyncpg.InternalClientError,
)


def database_down(exc: BaseException) -> bool:
    """PostgreSQL is unreachable (rather than the statement or our code being wrong)."""
    if isinstance(exc, DATABASE_DOWN):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower()


T = TypeVar("T")


async def write_until_stored(
    write: Callable[[], Awaitable[T]], *, what: str, give_up_s: float = 180.0
) -> T:
    """Run `write` until it succeeds while PostgreSQL is merely unreachable (capped back-off,
    one warning per attempt). For records of something already paid for: a paid LLM answer
    must not be thrown away, and paid again, because the database restarted meanwhile."""
    deadline = time.monotonic() + give_up_s
    delay = 0.2
    while True:
        try:
            return await write()
        except Exception as exc:
            if not database_down(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "database unavailable; keeping the record and retrying",
                extra={"record": what, "retry_in_s": round(delay, 2), "error": type(exc).__name__},
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 5.0)


class Store:
    """An asyncpg pool bound to one schema; subclasses hold a service's SQL."""

    def __init__(self, database_url: str, schema: str, migrations: Path, *, pool_max: int = 10):
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.database_url = database_url
        self.schema = schema
        self.migrations = migrations
        self.pool_max = pool_max
        self._pool: asyncpg.Pool | None = None
        self.toast_compression: str | None = None  # lz4 where the server has it (migrate)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreNotOpen("store is not open")
        return self._pool

    async def open(self, *, connect_timeout_s: float = 60.0) -> None:
        """Migrate, then open the pool. `connect_timeout_s` bounds each connection attempt
        (not the migrations, which may take their time)."""
        await self.migrate(connect_timeout_s=connect_timeout_s)
        # application_name tells operators (pg_stat_activity) and the bench whose it is.
        settings = {"search_path": self.schema, "application_name": self.application}
        if self.toast_compression:
            settings["default_toast_compression"] = self.toast_compression
        self._pool = await asyncpg.create_pool(
            self.database_url,
            min_size=1,
            max_size=self.pool_max,
            timeout=connect_timeout_s,
            server_settings=settings,
            reset=_keep_session,
        )

    @property
    def application(self) -> str:
        """The PostgreSQL application_name of this store's connections."""
        return f"seoblog:{self.schema}"[:63]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def migrate(self, *, connect_timeout_s: float = 60.0) -> list[int]:
        """Apply pending migrations; returns the versions applied by this call."""
        applied: list[int] = []
        conn = await asyncpg.connect(self.database_url, timeout=connect_timeout_s)
        try:
            # Large values (events with an article's text, posts, answers) are compressed with
            # lz4 where the server was built with it: a third of pglz's CPU on a 40 KB text,
            # for a tenth more bytes (the column default, so no migration rewrites a table).
            self.toast_compression = await conn.fetchval(_LZ4_IF_SUPPORTED)
            await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(self.schema))
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(f'SET search_path TO "{self.schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {
                    r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
                }
                for version, name, sql in list_migrations(self.migrations):
                    if version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            version,
                            name,
                        )
                    applied.append(version)
                    log.info("applied migration", extra={"schema": self.schema, "migration": name})
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(self.schema))
        finally:
            await conn.close()
        return applied

    async def ledger_usage(self, table: str, job_id: str) -> Usage:
        """What a job's paid-call ledger (`table`: rows in state open, done or failed, with
        prompt_tokens, completion_tokens, cost_usd) adds up to: answered calls at their real
        usage, calls left open by a killed process (maybe billed) at their estimate, counted
        apart as unconfirmed; failed calls (no answer) cost nothing."""
        if not _SCHEMA.match(table):
            raise ValueError(f"invalid table name {table!r}")
        row = await self.pool.fetchrow(
            f"""
            SELECT count(*) AS calls, count(*) FILTER (WHERE state = 'open') AS unconfirmed,
                   coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
                   coalesce(sum(completion_tokens), 0) AS completion_tokens,
                   coalesce(sum(cost_usd), 0) AS cost_usd
            FROM {table} WHERE job_id = $1 AND state <> 'failed'
            """,  # noqa: S608 - the table is our own identifier, checked above
            job_id,
        )
        return Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            calls=row["calls"],
            cost_usd=round(float(row["cost_usd"]), 8),
            unconfirmed_calls=row["unconfirmed"],
        )

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except Exception:
            return False
