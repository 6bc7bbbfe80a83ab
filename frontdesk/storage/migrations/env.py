"""Alembic environment: runs on the connection handed over by frontdesk.storage.migrate."""

from alembic import context
from sqlalchemy import create_engine

from frontdesk.model import Base
from frontdesk.storage.search_ddl import include_name

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things in place
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # plain `alembic` CLI use, with a synchronous URL
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
