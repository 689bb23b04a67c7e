import asyncio
from pathlib import Path

import pytest

from seoblog_runtime import Store
from seoblog_runtime.store import list_migrations

MIGRATIONS = Path(__file__).parent / "migrations_ok"


async def test_migrations_apply_once_when_replicas_start_together(infra, namespace, pg):
    schema = f"{namespace}_probe"
    stores = [Store(infra.database_url, schema, MIGRATIONS) for _ in range(4)]
    applied = await asyncio.gather(*(s.migrate() for s in stores))
    assert sorted(v for batch in applied for v in batch) == [1, 2]
    rows = await pg.fetch(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
    assert [r["version"] for r in rows] == [1, 2]
    columns = await pg.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = 'widgets'",
        schema,
    )
    assert {c["column_name"] for c in columns} == {"id", "n", "label"}


async def test_store_pool_works_inside_its_own_schema(infra, namespace):
    store = Store(infra.database_url, f"{namespace}_probe", MIGRATIONS)
    await store.open()
    try:
        await store.pool.execute("INSERT INTO widgets (id) VALUES ('a')")
        assert await store.pool.fetchval("SELECT count(*) FROM widgets") == 1
        assert await store.ping()
    finally:
        await store.close()


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0003_c.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="numbered"):
        list_migrations(tmp_path)


def test_schema_names_are_checked():
    with pytest.raises(ValueError, match="schema"):
        Store("postgresql://x", 'bad"; DROP', MIGRATIONS)


async def test_releasing_a_connection_costs_no_reset_round_trip_but_ends_its_transaction(
    infra, namespace
):
    store = Store(infra.database_url, f"{namespace}_probe", MIGRATIONS, pool_max=1)
    await store.open()
    sent: list[str] = []
    try:
        async with store.pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
            await conn.execute("SELECT 1")
        assert sent == ["SELECT 1"]  # no RESET ALL / UNLISTEN * after it
        conn = await store.pool.acquire()
        tx = conn.transaction()
        await tx.start()
        await conn.execute("INSERT INTO widgets (id) VALUES ('left-open')")
        await store.pool.release(conn)  # an unfinished transaction is still rolled back
        assert await store.pool.fetchval("SELECT count(*) FROM widgets") == 0
        assert await store.pool.fetchval("SHOW search_path") == f"{namespace}_probe"
    finally:
        await store.close()


async def test_connections_name_their_service_in_pg_stat_activity(infra, namespace, pg):
    store = Store(infra.database_url, f"{namespace}_probe", MIGRATIONS)
    await store.open()
    try:
        async with store.pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        name = await pg.fetchval(
            "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid
        )
        assert name == f"seoblog:{namespace}_probe" == store.application
    finally:
        await store.close()


async def test_large_values_are_compressed_with_lz4_where_the_server_has_it(infra, namespace, pg):
    """lz4 costs a third of pglz's CPU on an article-sized text (bench: 1.57 -> 0.58 ms a
    40 KB row); a server built without it keeps pglz and the store still opens."""
    supported = await pg.fetchval(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    store = Store(infra.database_url, f"{namespace}_probe", MIGRATIONS)
    await store.open()
    try:
        text = " ".join(f"word{i % 300} of an article" for i in range(4000))  # ~80 KB
        await store.pool.execute("INSERT INTO widgets (id, label) VALUES ('big', $1)", text)
        method = await store.pool.fetchval(
            "SELECT pg_column_compression(label) FROM widgets WHERE id = 'big'"
        )
        assert method == ("lz4" if supported else "pglz")
        assert store.toast_compression == ("lz4" if supported else None)
        assert await store.pool.fetchval("SELECT label FROM widgets WHERE id = 'big'") == text
    finally:
        await store.close()
