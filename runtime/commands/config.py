"""``frontdesk config export | apply FILE``: the admin configuration as one declarative file.

The work is :mod:`runtime.config_cli`'s; this module only reads the
command line and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from frontdesk.settings import Settings
from frontdesk.storage.database import create_engine, session_factory

NAME = "config"
HELP = "export the admin configuration to YAML/TOML, or apply such a file"

EXIT_REFUSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the current configuration")
    export.add_argument("-o", "--output", type=Path, help="file to write (.yaml, .yml or .toml); default stdout")
    export.add_argument("--format", choices=("yaml", "toml"), help="format for stdout (default yaml)")
    apply = actions.add_parser("apply", help="make the installation match a file (all or nothing)")
    apply.add_argument("file", type=Path)
    apply.add_argument("--dry-run", action="store_true", help="show the difference, change nothing")


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.config_cli import dump_config, export_config, format_for

    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            document = await export_config(session)
    finally:
        await engine.dispose()
    fmt = args.format or (format_for(args.output) if args.output else "yaml")
    text = dump_config(document, fmt)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _apply(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.config_cli import ConfigApplyError, apply_config, load_config

    engine = create_engine(settings.database_url)
    try:
        document = load_config(args.file)
        result = await apply_config(session_factory(engine), document, max_pipelines=settings.max_pipelines,
                                    dry_run=args.dry_run)
    except ConfigApplyError as error:
        print(f"refused, nothing changed: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as error:
        print(f"cannot read {args.file}: {error.strerror or error}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        await engine.dispose()
    if not result.changed:
        print("no changes: the installation already matches the file")
        return 0
    sys.stdout.write(result.diff)
    print("dry run: nothing changed" if args.dry_run else "applied", file=sys.stderr)
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_export(settings, args) if args.action == "export" else _apply(settings, args))
