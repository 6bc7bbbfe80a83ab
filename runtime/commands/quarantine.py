"""``frontdesk quarantine list | replay ID | replay --all``: inspect and re-run inputs ingest could not process."""

from __future__ import annotations

import argparse
import asyncio

from frontdesk.settings import Settings
from frontdesk.runtime.storage_context import ingest_context

NAME = "quarantine"
HELP = "list or replay quarantined messages"

EXIT_SOME_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show quarantined items not yet replayed")
    listing.add_argument("--all", action="store_true", dest="include_replayed", help="include replayed items")
    listing.add_argument("--cause", help="only items with this cause (e.g. parse_error)")
    listing.add_argument("--limit", type=int, default=100)
    replay = actions.add_parser("replay", help="run quarantined items through ingest again")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=int, help="the quarantined item's id")
    target.add_argument("--all", action="store_true", dest="replay_all", help="every item not yet replayed")


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    from frontdesk.ingest.quarantine import list_quarantine

    async with ingest_context(settings) as ctx:
        items = await list_quarantine(ctx, include_replayed=args.include_replayed, cause=args.cause,
                                      limit=args.limit)
    if not items:
        print("the quarantine is empty")
    for item in items:
        replayed = f" replayed {item.replayed_at:%Y-%m-%d %H:%M} -> {item.replay_outcome}" if item.replayed_at else ""
        tried = (f" (replayed {item.replay_attempts}x, last: {item.last_replay_cause})"
                 if item.replay_attempts and item.replayed_at is None else "")
        print(f"{item.id}\t{item.created_at:%Y-%m-%d %H:%M:%S}\t{item.channel}\t{item.source or '-'}\t"
              f"{item.cause}\t{item.detail or ''}{replayed}{tried}")
    return 0


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from frontdesk.channels.webhooks.config import parse_webhook_config
    from frontdesk.ingest.quarantine import list_quarantine, replay_quarantined
    from frontdesk.runtime.registries import quarantine_replayers

    # Messenger, chat and form items are rebuilt from their stored payloads
    # with the channel configuration; email items need nothing more.
    replayers = quarantine_replayers(parse_webhook_config(settings))
    failed = 0
    async with ingest_context(settings) as ctx:
        if args.replay_all:
            ids = [item.id for item in await list_quarantine(ctx, limit=1_000_000)]
        else:
            ids = [args.id]
        for item_id in ids:
            try:
                outcome = await replay_quarantined(ctx, item_id, replayers)
            except Exception as error:  # noqa: BLE001 - one broken item must not stop --all
                # The item keeps its place in the quarantine with this as its last cause.
                print(f"{item_id}\terror\t{error}")
                failed += 1
                continue
            detail = " ".join(f"{k}={v}" for k, v in (("ticket", outcome.ticket_id), ("message", outcome.message_id),
                                                     ("reason", outcome.reason)) if v is not None)
            print(f"{item_id}\t{outcome.kind}\t{detail}")
            failed += outcome.kind == "quarantined"
    return EXIT_SOME_FAILED if failed else 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_list(settings, args) if args.action == "list" else _replay(settings, args))
