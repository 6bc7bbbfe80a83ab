"""``frontdesk migrate``: bring the database schema up to this version's head."""

from __future__ import annotations

import argparse
import asyncio

import structlog

from frontdesk.settings import Settings
from frontdesk.storage.database import create_engine
from frontdesk.storage.migrate import current_revision, head_revision, upgrade

NAME = "migrate"
HELP = "apply pending database migrations"

log = structlog.get_logger("frontdesk.migrate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="only report; exit 1 when migrations are pending")


async def _migrate(url: str, check_only: bool) -> int:
    engine = create_engine(url)
    try:
        before, head = await current_revision(engine), head_revision()
        if check_only:
            log.info("migrate.status", current=before, head=head, pending=before != head)
            return 0 if before == head else 1
        await upgrade(engine)
        log.info("migrate.done", from_revision=before, to_revision=await current_revision(engine))
        return 0
    finally:
        await engine.dispose()


def run(settings: Settings, args: argparse.Namespace) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_migrate(settings.reveal_database_url(), args.check))
