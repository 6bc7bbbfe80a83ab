"""``frontdesk dead-letters list | replay ID... | replay --all``: events automation gave up on.

Replay re-publishes to the Kafka event topic when Kafka is configured (the
worker then handles the event again); in embedded mode it runs the
automation handler here, in this process.
"""

from __future__ import annotations

import argparse
import asyncio

from frontdesk.settings import Settings
from frontdesk.storage.database import create_engine, session_factory

NAME = "dead-letters"
HELP = "list or replay events automation failed on"

EXIT_SOME_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show dead letters not yet replayed")
    listing.add_argument("--all", action="store_true", dest="include_replayed", help="include replayed ones")
    listing.add_argument("--limit", type=int, default=100)
    replay = actions.add_parser("replay", help="handle dead-lettered events again")
    replay.add_argument("ids", nargs="*", type=int, metavar="ID")
    replay.add_argument("--all", action="store_true", dest="replay_all", help="every dead letter not yet replayed")


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: it pulls in the Kafka client, which other subcommands never need.
    from frontdesk.automation.dead_letters import list_dead_letters, replay_dead_letters

    engine = create_engine(settings.reveal_database_url())
    sessions = session_factory(engine)
    try:
        if args.action == "list":
            letters = await list_dead_letters(sessions, include_replayed=args.include_replayed, limit=args.limit)
            if not letters:
                print("no dead letters")
            for letter in letters:
                replayed = f"\treplayed {letter.replayed_at:%Y-%m-%d %H:%M}" if letter.replayed_at else ""
                print(f"{letter.id}\t{letter.created_at:%Y-%m-%d %H:%M:%S}\t{letter.event_type or '-'}\t"
                      f"ticket={letter.ticket_id}\tattempts={letter.attempts}\t{letter.error}{replayed}")
            return 0
        ids = [letter.id for letter in await list_dead_letters(sessions, limit=1_000_000)] if args.replay_all else args.ids
        if not ids:
            print("nothing to replay: name dead letter ids or pass --all")
            return EXIT_SOME_FAILED if not args.replay_all else 0
        if settings.kafka_bootstrap:
            from frontdesk.automation.kafka_config import KafkaTopics

            topics = KafkaTopics.from_environ(settings.kafka_bootstrap)
            outcomes = await replay_dead_letters(sessions, ids, bootstrap=settings.kafka_bootstrap, topic=topics.events)
        else:
            from frontdesk.runtime.worker import automation_handler

            outcomes = await replay_dead_letters(sessions, ids, handler=automation_handler(settings, sessions))
        for outcome in outcomes:
            print(f"{outcome.id}\t{'ok' if outcome.ok else 'failed'}\t{outcome.detail}")
        return 0 if all(o.ok for o in outcomes) else EXIT_SOME_FAILED
    finally:
        await engine.dispose()


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))
