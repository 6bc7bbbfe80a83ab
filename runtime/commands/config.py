"""``frontdesk config export [-o FILE] [--format yaml|toml]`` and ``frontdesk config apply FILE [--dry-run]``.

Export writes pipelines, statuses, stage properties, automation, templates,
custom properties, users and teams (never tokens or secrets).  Apply shows
the difference first, then makes the database match the file, or changes
nothing and names the broken rule.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from frontdesk.settings import Settings
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.runtime.config import ConfigApplyError, apply_config, dump_config, export_config, format_for, load_config

NAME = "config"
HELP = "export or apply the declarative admin configuration (YAML or TOML)"

EXIT_REFUSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the configuration to a file or stdout")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.add_argument("--format", choices=("yaml", "toml"), help="default: from the file suffix, else yaml")
    apply = actions.add_parser("apply", help="make the database match FILE; shows the diff first")
    apply.add_argument("file", type=Path, metavar="FILE")
    apply.add_argument("--dry-run", action="store_true", help="only show what would change")


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.reveal_database_url())
    try:
        async with session_factory(engine)() as session:
            doc = await export_config(session)
    finally:
        await engine.dispose()
    fmt = args.format or (format_for(args.output) if args.output else "yaml")
    text = dump_config(doc, fmt)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


async def _apply(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.reveal_database_url())
    try:
        result = await apply_config(session_factory(engine), load_config(args.file),
                                    max_pipelines=settings.max_pipelines,
                                    max_custom_views=settings.max_custom_views, dry_run=args.dry_run,
                                    actor=f"frontdesk config apply {args.file.name}")
    except ConfigApplyError as error:
        print(f"frontdesk config apply: refused, nothing changed: {error}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        await engine.dispose()
    if not result.changed:
        print("no changes: the database already matches the file")
        return 0
    sys.stdout.write(result.diff)
    print("dry run: nothing changed" if args.dry_run else "applied")
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_export(settings, args) if args.action == "export" else _apply(settings, args))
