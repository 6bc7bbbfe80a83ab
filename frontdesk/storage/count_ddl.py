"""The triggers that keep ``ticket_counts`` equal to a GROUP BY over the live tickets, per database.

Triggers rather than Python: a ticket's pipeline, status, owner, team, spam
flag, latest-message flag and deletion change on many code paths (and an
owner's or team's deletion sets them to NULL inside the database), so the
one place that sees every change is the table itself.  They run in the
writer's transaction, so a count is never ahead of or behind its tickets.

PostgreSQL: statement-level triggers with transition tables, so a bulk
statement costs one grouped upsert; an update that moves no ticket between
groups (most of them: a name, a timestamp) nets to nothing and writes no
row.  Rows are upserted in key order so two writers lock shared rows in the
same order.  SQLite: row-level triggers (its only kind), one upsert per
changed ticket.  The single migration calls :func:`upgrade`.
"""

from __future__ import annotations

from typing import Any

KEY = "pipeline_id, status_id, owner_id, team_id, is_spam, last_message_outbound"
COUNTED_COLUMNS = KEY + ", deleted_at"  # an update of anything else moves no ticket between counts


def _key_of(row: str) -> str:
    """The count key of a ticket row (``new``, ``old``, or a transition table's columns with ``row`` empty)."""
    p = f"{row}." if row else ""
    return (f"{p}pipeline_id, {p}status_id, coalesce({p}owner_id, 0), coalesce({p}team_id, 0), {p}is_spam, "
            f"{p}last_message_outbound")


def _pg_rows(table: str, sign: int) -> str:
    return f"SELECT {_key_of('')}, {sign} FROM {table} WHERE deleted_at IS NULL"


def _pg_add(rows: str) -> str:
    """Add the signed rows ``rows`` to the counts, grouped, in key order, skipping groups that net to zero."""
    return (f"INSERT INTO ticket_counts AS c ({KEY}, n) SELECT {KEY}, sum(d) FROM ({rows}) AS delta({KEY}, d) "
            f"GROUP BY {KEY} HAVING sum(d) <> 0 ORDER BY {KEY} "
            f"ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + excluded.n;")


POSTGRESQL = (
    "CREATE FUNCTION ticket_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF TG_OP = 'INSERT' THEN {_pg_add(_pg_rows('new_rows', 1))} "
    f"ELSIF TG_OP = 'DELETE' THEN {_pg_add(_pg_rows('old_rows', -1))} "
    f"ELSE {_pg_add(_pg_rows('new_rows', 1) + ' UNION ALL ' + _pg_rows('old_rows', -1))} "
    "END IF; RETURN NULL; END $$",
    "CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_follow()",
    "CREATE TRIGGER ticket_counts_update AFTER UPDATE ON tickets REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_follow()",
    "CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_follow()",
)


def _sqlite_add(row: str, sign: int) -> str:
    # The WHERE also settles SQLite's parse of "SELECT ... ON CONFLICT" as an upsert.
    return (f"INSERT INTO ticket_counts ({KEY}, n) SELECT {_key_of(row)}, {sign} WHERE {row}.deleted_at IS NULL "
            f"ON CONFLICT ({KEY}) DO UPDATE SET n = n + excluded.n;")


SQLITE = (
    f"CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets BEGIN {_sqlite_add('new', 1)} END",
    f"CREATE TRIGGER ticket_counts_update AFTER UPDATE OF {COUNTED_COLUMNS} ON tickets BEGIN "
    f"{_sqlite_add('old', -1)} {_sqlite_add('new', 1)} END",
    f"CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets BEGIN {_sqlite_add('old', -1)} END",
)


# The same grouping over the whole table: for a bulk load done with triggers off
# (as ``pg_restore --disable-triggers`` does), and to repair counts by hand.
REBUILD = (
    "DELETE FROM ticket_counts",
    f"INSERT INTO ticket_counts ({KEY}, n) SELECT {_key_of('')}, count(*) FROM tickets WHERE deleted_at IS NULL "
    f"GROUP BY {_key_of('')}",
)


def statements(dialect: str) -> tuple[str, ...]:
    return POSTGRESQL if dialect == "postgresql" else SQLITE


def upgrade(op: Any) -> None:
    for statement in statements(op.get_bind().dialect.name):
        op.execute(statement)
