"""The full-text structures over ``ticket_search`` that the models cannot describe, per database.

SQLite: an FTS5 table with the trigram tokenizer (substring matches of three
characters or more, case-insensitive) kept in step with ``ticket_search`` by
triggers, so every write to a search document updates it in the same
transaction.  PostgreSQL: a GIN index on the document's ``tsvector`` (words
in descriptions and message bodies) and ``pg_trgm`` GIN indexes for partial
matches of names, emails and phone numbers.  The single migration calls
:func:`upgrade`; :func:`include_name` keeps these objects out of the
model-versus-database comparison.
"""

from __future__ import annotations

from typing import Any

FTS_TABLE = "ticket_search_fts"

SQLITE = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(names, document, phones, content='ticket_search', "
    "content_rowid='ticket_id', tokenize='trigram')",
    f"CREATE TRIGGER ticket_search_ai AFTER INSERT ON ticket_search BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, names, document, phones) VALUES (new.ticket_id, new.names, new.document, "
    "new.phones); END",
    f"CREATE TRIGGER ticket_search_ad AFTER DELETE ON ticket_search BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, names, document, phones) "
    "VALUES ('delete', old.ticket_id, old.names, old.document, old.phones); END",
    f"CREATE TRIGGER ticket_search_au AFTER UPDATE ON ticket_search BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, names, document, phones) "
    "VALUES ('delete', old.ticket_id, old.names, old.document, old.phones); "
    f"INSERT INTO {FTS_TABLE}(rowid, names, document, phones) VALUES (new.ticket_id, new.names, new.document, "
    "new.phones); END",
)

POSTGRESQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_search_document_fts ON ticket_search USING gin (to_tsvector('simple', document))",
    "CREATE INDEX ix_search_names_trgm ON ticket_search USING gin (names gin_trgm_ops)",
    "CREATE INDEX ix_search_phones_trgm ON ticket_search USING gin (phones gin_trgm_ops)",
)

HAND_WRITTEN_INDEXES = ("ix_search_document_fts", "ix_search_names_trgm", "ix_search_phones_trgm")


def statements(dialect: str) -> tuple[str, ...]:
    return POSTGRESQL if dialect == "postgresql" else SQLITE


def upgrade(op: Any) -> None:
    for statement in statements(op.get_bind().dialect.name):
        op.execute(statement)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's filter: the FTS5 table and its shadow tables and the hand-written indexes are not models."""
    if type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False
    return not (type_ == "index" and name in HAND_WRITTEN_INDEXES)
