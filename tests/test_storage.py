"""The schema, the migrations and the defaults a fresh installation starts with."""

import asyncio
import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from frontdesk.model import Channel, EmailTemplate, Pipeline, SlaSettingsRow, Status, StatusAction
from frontdesk.storage.database import dumps_json, lost_a_race
from frontdesk.storage.migrate import current_revision, head_revision


async def test_migrated_database_is_at_head(engine):
    assert await current_revision(engine) == head_revision()


async def test_migrations_match_the_models(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from frontdesk.model import Base
    from frontdesk.storage.search_ddl import include_name

    def diff(connection):
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_fresh_installation_has_the_support_pipeline(sessions):
    async with sessions() as session:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == "support"))
        statuses = (await session.scalars(
            select(Status).where(Status.pipeline_id == pipeline.id).order_by(Status.position))).all()
        assert pipeline.name == "Support"
        assert [(s.label, s.internal_name, s.is_closed) for s in statuses] == [
            ("New", "new", False),
            ("Waiting on contact", "waiting_on_contact", False),
            ("Waiting on us", "waiting_on_us", False),
            ("Closed", "closed", True),
        ]
        templates = {t.key for t in (await session.scalars(select(EmailTemplate))).all()}
        assert templates == {"ticket_received", "ticket_closed"}
        actions = (await session.scalars(select(StatusAction))).all()
        assert len(actions) == 3
        channels = {c.key for c in (await session.scalars(select(Channel))).all()}
        assert channels == {"support@acme.test", "billing@acme.test"}


async def test_defaults_are_idempotent(sessions, settings):
    from frontdesk.defaults import ensure_defaults

    await ensure_defaults(sessions, settings)
    async with sessions() as session:
        assert len((await session.scalars(select(Pipeline))).all()) == 1
        assert len((await session.scalars(select(Status))).all()) == 4


async def test_json_columns_keep_what_they_are_given_through_the_fast_encoder(sessions):
    # orjson encodes; what it refuses (an integer beyond 64 bits) still goes through json, as before.
    document = {"plan": "gold", "ø": ["é", 1.5, None, True], 2: {"big": 2**70}}
    assert json.loads(dumps_json(document)) == {"plan": "gold", "ø": ["é", 1.5, None, True], "2": {"big": 2**70}}
    async with sessions.begin() as session:
        session.add(SlaSettingsRow(id=1, document=document))
    async with sessions() as session:
        stored = await session.scalar(select(SlaSettingsRow.document))
    assert stored == {"plan": "gold", "ø": ["é", 1.5, None, True], "2": {"big": 2**70}}


async def test_a_deadlock_is_told_apart_as_a_lost_race(engine):
    """Two writers locking the same rows in opposite orders: PostgreSQL aborts one, and callers re-run it.

    The kept view counts (``ticket_counts``) make such collisions possible
    between any two ticket writers; ingest re-runs the transaction and the
    API answers 503 (retry), so nothing is quarantined or answered 500.
    """
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no deadlock between transactions")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE deadlock_probe (id int PRIMARY KEY, n int)"))
        await connection.execute(text("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"))
    first_locked, second_locked = asyncio.Event(), asyncio.Event()

    async def writer(first: int, second: int, mine: asyncio.Event, theirs: asyncio.Event) -> BaseException | None:
        try:
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": first})
                mine.set()
                await theirs.wait()
                await connection.execute(text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": second})
        except DBAPIError as error:
            return error
        return None

    outcomes = await asyncio.gather(writer(1, 2, first_locked, second_locked),
                                    writer(2, 1, second_locked, first_locked))
    failures = [o for o in outcomes if o is not None]
    assert len(failures) == 1 and "deadlock" in str(failures[0])
    assert lost_a_race(failures[0]) and not lost_a_race(ValueError("deadlock"))
