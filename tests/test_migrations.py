"""Every migration applies, in order, to an empty database, and a second run applies none."""

import uuid

import asyncpg

from jobd.node import migrations_folder
from jobd.store import Store


async def test_migrations_apply_to_empty_database(migrated):
    name = f"jobd_migrations_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(migrated)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        url = migrated.rsplit("/", 1)[0] + f"/{name}"
        store = await Store.connect(url)
        try:
            applied = await store.migrate(migrations_folder())
            again = await store.migrate(migrations_folder())
            tables = {row["tablename"] for row in await store.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        finally:
            await store.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()

    files = sorted(path.name for path in migrations_folder().glob("*.sql"))
    assert applied == files
    assert again == []
    assert {"jobs", "job_attempts", "job_events", "job_counts", "jobd_migrations"} <= tables
