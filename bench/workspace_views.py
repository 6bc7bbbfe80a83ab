"""Benchmark: the help desk workspace (default views with counts, a custom view, search) on a generated account.

    .venv/bin/python bench/workspace_views.py --database postgresql [--tickets 1000000] [--pg-url URL] \
        [--runs 30] [--report bench/results/workspace_views.md]
    .venv/bin/python bench/workspace_views.py --database sqlite [--tickets 200000]

The account is generated with set-based SQL (one INSERT ... SELECT per
table, each printing a progress line: 3 messages per ticket, one contact
per two tickets with 8,000 surnames and varied phone numbers, 10,000
companies, 50 agents in 3 teams, two pipelines; the shape of a long-lived
account, see ``OPEN`` below), with the rows the write paths would leave:
the search documents as ``tickets.search_index`` builds them, the Sent flag
matching the last message, and ``ticket_counts`` as its triggers keep it.
On PostgreSQL the load runs as a restore does: indexes dropped and built
afterwards, foreign keys and triggers off during the load and the counts
built once after it, then VACUUM ANALYZE.  ``--keep`` keeps the database
and ``--url`` times against it again without generating.

Every request goes through the real API in this process (aiohttp client ->
app -> database), as agent 1 (ticket access "all", in team 2):

* each default view's first page (50 tickets) with its count,
* a custom view with three advanced filters (priority, a custom property, a relative date),
* a search by contact name, by phone (formatted differently from how it is stored) and by a word in message bodies.

Each is timed ``--runs`` times (after one warm-up) with the indexes, then
again in the same run after dropping them (the views' partial indexes and
``ix_tickets_created``, and on PostgreSQL the tsvector / trigram indexes;
on SQLite the FTS5 table is the only way the search query runs, so its
search has no baseline) and with every count taken over ``tickets`` instead
of ``ticket_counts``.  PostgreSQL's database is a fresh one from
``--pg-url`` / ``FRONTDESK_TEST_PG_URL``, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scratch_databases import create_database, drop_database  # noqa: E402

TOKEN = "bench-agent-token"
FIRST = ("Zoë", "Ann", "Bob", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Jo", "Kemal", "Lena",
         "Mateo", "Nia", "Olga", "Pierre", "Rosa", "Sven", "Yuki")
# Surnames from three syllable lists: 8,000 of them, so a name's trigrams are
# spread as in real data (one shared "Surname" in every row was not).
_SURNAME = (("Kov", "Mar", "Sch", "Bal", "Fer", "Nak", "Oli", "Pet", "Rod", "Sil", "Tan", "Vog", "Wal", "Yam", "Zim",
             "Ber", "Cas", "Dub", "Eng", "Gar"),
            ("a", "e", "i", "o", "u", "an", "en", "in", "on", "ar", "er", "ir", "or", "al", "el", "il", "ol", "ur",
             "ay", "ey"),
            ("k", "ski", "son", "ez", "ic", "ov", "ini", "ard", "ell", "man", "berg", "ton", "ley", "ura", "ama",
             "ida", "ano", "ek", "is", "ot"))

VIEWS = ("unassigned", "assigned_to_me", "my_team_open", "all_open", "sent", "spam")
DROPPED_INDEXES = ("ix_tickets_view_owner", "ix_tickets_updated", "ix_tickets_created", "ix_tickets_sent",
                   "ix_tickets_spam", "ix_tickets_owner_id", "ix_tickets_team_id", "ix_tickets_pipeline_status")
# The shape of a long-lived account (ticket 1 is the newest, one every 30 s):
# the newest 5% mostly still open plus a few old stragglers (~5.5% open in
# all), owners spread over 49 agents (an open ticket is unassigned one time
# in six), a team on 90%, priority mostly low / medium, 1.5% spam, and on
# 70% an agent's reply is the latest message (the Sent view).
OPEN = "((i * 20 <= {n} AND i % 4 <> 0) OR i % 41 = 0)"
UNASSIGNED = f"({OPEN} AND i % 6 = 0 OR i % 100 = 1)"
OWNER = "((i % 7) * (i % 7) + i % 11) % 49 + 1"
SENT = "({t} % 10 < 7 AND {t} % 67 <> 0)"
DROPPED_PG_SEARCH = ("ix_search_document_fts", "ix_search_names_trgm", "ix_search_phones_trgm")


def _series(dialect: str, n: int) -> str:
    if dialect == "postgresql":
        return f"s(i) AS (SELECT generate_series(1, {n}))"
    return f"RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"


def _ago(dialect: str, seconds: str) -> str:
    if dialect == "postgresql":
        return f"(now() - make_interval(secs => {seconds}))"
    return f"(strftime('%Y-%m-%d %H:%M:%S', 'now', '-' || ({seconds}) || ' seconds') || '.000000')"


def _pad7(dialect: str, expr: str) -> str:
    return f"right('0000000' || ({expr}), 7)" if dialect == "postgresql" else f"substr('0000000' || ({expr}), -7)"


def _json(dialect: str, expr: str) -> str:
    return f"CAST({expr} AS JSON)" if dialect == "postgresql" else expr


def _digits(dialect: str, expr: str) -> str:
    """A phone's digits, as ``tickets.search_index.phone_digits`` stores them."""
    stripped = expr
    for ch in ("+", " ", "(", ")", "-"):
        stripped = f"replace({stripped}, '{ch}', '')"
    return stripped


def _body(ticket: str, position: str) -> str:
    """Message ``position`` (1-3) of ``ticket``: the same text in ``messages`` and in the search documents."""
    return (f"'hello, about order ' || {ticket} || ' the kw' || (({ticket} * 7 + {position}) % 1000) || ' part is ' "
            f"|| CASE WHEN {position} = 3 THEN 'shipped' ELSE 'broken' END")


def generation_sql(dialect: str, tickets: int) -> list[str]:
    """The account, table by table, each one INSERT ... SELECT over a generated series."""
    contacts = max(tickets // 2, 1)
    companies = min(10_000, contacts)
    now = _ago(dialect, "0")
    opened, unassigned = OPEN.format(n=tickets), UNASSIGNED.format(n=tickets)
    first = "CASE " + " ".join(f"WHEN i % {len(FIRST)} = {k} THEN '{n}'" for k, n in enumerate(FIRST)) + " END"
    surname = " || ".join("CASE " + " ".join(f"WHEN (i / {div}) % {len(part)} = {k} THEN '{n}'"
                                             for k, n in enumerate(part)) + " END"
                          for div, part in zip((7, 140, 2800), _SURNAME))
    # Area codes 201-998 and seven digits, stored as people type them.
    area, digits = "(201 + (i * 7) % 798)", _pad7(dialect, "(CAST(i AS BIGINT) * 7919) % 10000000")
    return [
        "INSERT INTO teams (id, name, created_at) VALUES (1, 'Billing', " + now + "), (2, 'Tech', " + now + "), "
        "(3, 'Field', " + now + ")",
        "INSERT INTO pipelines (id, name, internal_name, position, created_at) VALUES (1, 'Support', 'support', 0, "
        + now + "), (2, 'Billing', 'billing', 1, " + now + ")",
        "INSERT INTO statuses (id, pipeline_id, label, internal_name, position, is_closed) VALUES "
        "(1, 1, 'New', 'new', 0, false), (2, 1, 'Waiting on contact', 'waiting_on_contact', 1, false), "
        "(3, 1, 'Waiting on us', 'waiting_on_us', 2, false), (4, 1, 'Closed', 'closed', 3, true), "
        "(5, 2, 'New', 'new', 0, false), (6, 2, 'Waiting on us', 'waiting_on_us', 1, false), "
        "(7, 2, 'Closed', 'closed', 2, true)",
        f"WITH {_series(dialect, 50)} INSERT INTO users (id, name, email, role, primary_team_id, ticket_access, "
        "sees_unassigned, can_manage_views, account_access, is_active, created_at) SELECT i, 'Agent ' || i, 'agent' || i || "
        f"'@acme.test', 'agent', (i % 3) + 1, 'all', true, true, false, true, {now} FROM s",
        "INSERT INTO team_memberships (user_id, team_id) SELECT id, primary_team_id FROM users",
        f"WITH {_series(dialect, companies)} INSERT INTO companies (id, name, domain, created_at, updated_at) "
        f"SELECT i, 'Company ' || i || ' GmbH', 'c' || i || '.test', {now}, {now} FROM s",
        f"WITH {_series(dialect, contacts)} INSERT INTO contacts (id, email, first_name, last_name, phone, mobile, "
        "company_id, is_marketing_contact, created_at, updated_at) SELECT i, 'person' || i || '@mail.test', "
        f"{first}, {surname}, '+1 (' || {area} || ') ' || substr({digits}, 1, 3) || '-' || substr({digits}, 4, 4), "
        f"NULL, (i % {companies}) + 1, false, {now}, {now} FROM s",
        f"WITH {_series(dialect, tickets)} INSERT INTO tickets (id, name, description, pipeline_id, status_id, "
        "priority, owner_id, team_id, source_channel, contact_id, company_id, custom_properties, is_spam, "
        "last_message_outbound, created_at, updated_at) SELECT i, 'Order ' || i || ' question', "
        f"'Customer asks about order ' || i, CASE WHEN i % 5 = 0 THEN 2 ELSE 1 END, CASE WHEN NOT {opened} "
        "THEN CASE WHEN i % 5 = 0 THEN 7 ELSE 4 END WHEN i % 5 = 0 THEN 5 + i % 2 ELSE 1 + i % 3 END, "
        "CASE WHEN i % 100 < 30 THEN 'low' WHEN i % 100 < 75 THEN 'medium' WHEN i % 100 < 93 THEN 'high' "
        f"ELSE 'urgent' END, CASE WHEN {unassigned} THEN NULL ELSE {OWNER} END, "
        f"CASE WHEN i % 10 = 9 THEN NULL WHEN {unassigned} THEN (i % 3) + 1 ELSE ({OWNER}) % 3 + 1 END, 'email', "
        f"(i % {contacts}) + 1, ((i % {contacts}) % {companies}) + 1, "
        + _json(dialect, "'{\"plan\": \"' || CASE WHEN i % 20 < 14 THEN 'free' WHEN i % 20 < 19 THEN 'gold' "
                         "ELSE 'enterprise' END || '\"}'")
        + f", i % 67 = 0, {SENT.format(t='i')}, {_ago(dialect, 'i * 30')}, {_ago(dialect, 'i * 10')} FROM s",
        f"WITH {_series(dialect, tickets * 3)} INSERT INTO messages (ticket_id, direction, channel, \"references\", "
        "to_addresses, cc_addresses, headers, defects, extra, text_body, author_kind, screening, is_forwarded, "
        "is_automated, via_personal_mailbox, created_at) SELECT t, CASE WHEN m = 3 AND "
        + SENT.format(t="t") + " THEN 'outbound' ELSE 'inbound' END, 'email', " + ", ".join([_json(dialect, "'[]'")] * 5) + ", "
        + _json(dialect, "'{}'") + ", " + _body("t", "m")
        + ", CASE WHEN m = 3 AND " + SENT.format(t="t") + " THEN 'agent' ELSE 'customer' END, 'accepted', false, false, false, "
        + _ago(dialect, "t * 10 + 3 - m")
        + " FROM (SELECT (i - 1) / 3 + 1 AS t, (i - 1) % 3 + 1 AS m FROM s) AS g",
        "INSERT INTO ticket_search (ticket_id, names, document, phones) SELECT t.id, lower('#' || t.id || ' ' || "
        "t.name || ' ' || c.first_name || ' ' || c.last_name || ' ' || c.email || ' ' || co.name), "
        "lower(t.description || ' ' || " + " || ' ' || ".join(_body("t.id", str(k)) for k in (1, 2, 3))
        + "), " + _digits(dialect, "c.phone") + " FROM tickets t "
        "JOIN contacts c ON c.id = t.contact_id JOIN companies co ON co.id = t.company_id",
    ]


LOADED_TABLES = ("tickets", "messages", "contacts", "companies", "ticket_search")


def progress(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)


async def _secondary_indexes(conn: Any) -> list[tuple[str, str]]:
    """PostgreSQL: (name, definition) of the loaded tables' indexes that back no constraint."""
    from sqlalchemy import text

    rows = await conn.execute(text(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() "
        "AND i.tablename = ANY(:tables) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
        "WHERE c.conname = i.indexname)"), {"tables": list(LOADED_TABLES)})
    return [(name, definition) for name, definition in rows]


async def generate(engine: Any, dialect: str, tickets: int) -> float:
    """Fill the account. PostgreSQL: indexes are dropped for the load and built after it, as a restore does."""
    from sqlalchemy import text

    from frontdesk.api.auth import hash_token
    from frontdesk.storage import count_ddl

    started = time.perf_counter()
    indexes: list[tuple[str, str]] = []
    async with engine.begin() as conn:
        if dialect == "postgresql":
            # As a restore does: indexes are built after the load, and foreign
            # keys and triggers are off during it (the generated rows satisfy
            # the keys; the counts the triggers keep are built once, below).
            indexes = await _secondary_indexes(conn)
            for name, _ in indexes:
                await conn.execute(text(f"DROP INDEX {name}"))
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in generation_sql(dialect, tickets):
            table = statement.split("INSERT INTO ", 1)[1].split(" ", 1)[0]
            result = await conn.execute(text(statement))
            progress(f"{table}: {result.rowcount:,} rows" if result.rowcount >= 0 else table, started)
        if dialect == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = origin"))
            for statement in count_ddl.REBUILD:
                await conn.execute(text(statement))
            progress("ticket_counts rebuilt", started)
        await conn.execute(text("INSERT INTO api_tokens (user_id, token_hash, label, created_at) "
                                "VALUES (1, :h, 'bench', :now)"), {"h": hash_token(TOKEN),
                                                                   "now": datetime.now(timezone.utc)})
        await conn.execute(text("INSERT INTO property_definitions (name, label, type, options, read_only, "
                                "calculated) VALUES ('plan', 'Plan', 'enumeration', " + _json(dialect, ":o")
                                + ", false, false)"), {"o": '["free", "gold", "enterprise"]'})
    if dialect == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("SET maintenance_work_mem = '256MB'"))
            for name, definition in indexes:
                await conn.execute(text(definition))
                await conn.commit()
                progress(f"index {name}", started)
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in (*LOADED_TABLES, "statuses", "users", "team_memberships", "ticket_counts"):
                await autocommit.execute(text(f"VACUUM ANALYZE {table}"))
            progress("VACUUM ANALYZE", started)
    else:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        progress("ANALYZE", started)
    return time.perf_counter() - started


async def requests_to_time(engine: Any, tickets: int) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    from sqlalchemy import text

    probe = max(tickets // 3, 1)
    contact = (probe % max(tickets // 2, 1)) + 1
    async with engine.connect() as conn:
        first, last, stored = (await conn.execute(text(
            "SELECT first_name, last_name, phone FROM contacts WHERE id = :c"), {"c": contact})).one()
    digits = "".join(ch for ch in stored if ch.isdigit())
    phone = f"{digits[1:4]}.{digits[4:7]}.{digits[7:]}"  # "555.010.2030": not the stored formatting
    timed: dict[str, tuple[str, list[tuple[str, str]]]] = {
        f"view {v}": (f"/api/v1/views/{v}/tickets", [("limit", "50")]) for v in VIEWS}
    timed["custom view, 3 filters"] = ("/api/v1/tickets", [
        ("limit", "50"), ("filter", "priority:in:high,urgent"), ("filter", "plan:eq:gold"),
        ("filter", "created_at:last_days:30")])
    timed["search: contact name"] = ("/api/v1/tickets", [("limit", "50"), ("q", f"{first} {last}")])
    timed["search: phone"] = ("/api/v1/tickets", [("limit", "50"), ("q", phone)])
    timed["search: body word"] = ("/api/v1/tickets", [("limit", "50"), ("q", "kw417")])
    return timed


async def time_requests(client: Any, timed: dict[str, Any], runs: int) -> dict[str, tuple[float, float, int]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    results: dict[str, tuple[float, float, int]] = {}
    for name, (path, params) in timed.items():
        samples = []
        total = -1
        for attempt in range(runs + 1):
            started = time.perf_counter()
            async with client.get(path, params=params, headers=headers) as response:
                body = await response.json()
                if response.status != 200:
                    raise SystemExit(f"{name}: {response.status} {body}")
            if attempt:
                samples.append((time.perf_counter() - started) * 1000)
            total = body["total"]
        samples.sort()
        results[name] = (statistics.median(samples), samples[math.ceil(len(samples) * 0.95) - 1], total)  # nearest rank
    return results


async def drop_indexes(engine: Any, dialect: str) -> None:
    from sqlalchemy import text

    names = DROPPED_INDEXES + (DROPPED_PG_SEARCH if dialect == "postgresql" else ())
    async with engine.begin() as conn:
        for name in names:
            await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))


async def run(args: argparse.Namespace) -> str:
    import aiohttp

    from frontdesk.api.app import create_app
    from frontdesk.runtime.logs import configure_logging
    from frontdesk.settings import Settings
    from frontdesk.storage.blobs import BlobStore
    from frontdesk.storage.database import create_engine, session_factory
    from frontdesk.storage.migrate import upgrade
    from frontdesk.tickets import counts

    sys.path.insert(0, str(REPO / "tests" / "api"))
    from api_harness import listen

    workdir = Path(tempfile.mkdtemp(prefix="fd-bench-views-"))
    if args.url:  # an account generated by an earlier run with --keep
        url, pg_name = args.url, None
    else:
        url, pg_name = await create_database(args.database, args.pg_url, workdir, "fd_bench_views")
    engine = create_engine(url)
    try:
        dialect = engine.dialect.name
        generated = 0.0
        if not args.url:
            await upgrade(engine)
            generated = await generate(engine, dialect, args.tickets)
        if args.keep:
            print(f"kept: --url {url}", file=sys.stderr, flush=True)
        settings = Settings(data_dir=workdir, database_url=url, log_level="WARNING")
        configure_logging(settings)  # no access-log line per timed request
        runner, base = await listen(create_app(settings, session_factory(engine), BlobStore(workdir / "blobs")))
        try:
            async with aiohttp.ClientSession(base_url=base) as client:
                timed = await requests_to_time(engine, args.tickets)
                indexed = await time_requests(client, timed, args.runs)
                if args.keep:
                    return report(args, dialect, generated, indexed, None)
                await drop_indexes(engine, dialect)
                # The baseline counts over tickets too, as before ticket_counts.
                counts.counts_clause = lambda clause: None
                bare = await time_requests(client, timed, max(3, args.runs // 5))
        finally:
            await runner.cleanup()
    finally:
        await engine.dispose()
        if pg_name and not args.keep:
            await drop_database(args.pg_url, pg_name)
    return report(args, dialect, generated, indexed, bare)


def report(args: argparse.Namespace, dialect: str, generated: float, indexed: dict[str, Any],
           bare: dict[str, Any] | None) -> str:
    lines = [
        f"# Workspace views and search ({dialect}, {args.tickets:,} tickets, {args.tickets * 3:,} messages)", "",
        f"- command: `{' '.join(sys.argv)}`",
        f"- when: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, machine: {platform.node()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        f"- generated in {generated:.1f} s; {args.runs} timed runs per request with indexes "
        f"(fewer without), through the API in-process (HTTP, query, count, JSON)", "",
        "| request | total | p50 ms | p95 ms | without indexes: p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (p50, p95, total) in indexed.items():
        b50, b95, _ = bare[name] if bare else (0.0, 0.0, 0)
        no_baseline = bare is None or (dialect == "sqlite" and name.startswith("search"))
        lines.append(f"| {name} | {total:,} | {p50:.1f} | {p95:.1f} | "
                     + ("n/a | n/a |" if no_baseline else f"{b50:.1f} | {b95:.1f} |"))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("FRONTDESK_TEST_PG_URL"))
    parser.add_argument("--tickets", type=int)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--keep", action="store_true",
                        help="keep the generated database and its indexes (no run without them), and print its --url")
    parser.add_argument("--url", help="time against a database an earlier --keep run generated (no generation)")
    args = parser.parse_args()
    if args.tickets is None:
        args.tickets = 1_000_000 if args.database == "postgresql" else 200_000
    text = asyncio.run(run(args))
    sys.stdout.write(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
