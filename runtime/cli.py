"""The ``frontdesk`` command line: one small module per subcommand under :mod:`runtime.commands`.

Each module named in :data:`COMMANDS` exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(settings, args) -> int`` (the exit
code); to add a subcommand, write such a module and add one line to the
tuple.  Every subcommand takes ``--config FILE`` (also ``FRONTDESK_CONFIG``);
the environment overrides the file.  The settings are loaded and logging is
configured here, once, before the subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

from frontdesk.settings import ConfigError, load_settings
from frontdesk.runtime.logs import configure_logging

COMMANDS = (
    "frontdesk.runtime.commands.run",
    "frontdesk.runtime.commands.migrate",
    "frontdesk.runtime.commands.quarantine",
    "frontdesk.runtime.commands.worker",
    "frontdesk.runtime.commands.dead_letters",
    "frontdesk.runtime.commands.config",
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frontdesk", description="Self-hosted helpdesk backend.")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(name)
        sub = subcommands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        sub.add_argument("--config", type=Path, metavar="FILE", default=os.environ.get("FRONTDESK_CONFIG") or None,
                         help="TOML configuration file (default: $FRONTDESK_CONFIG; the environment overrides it)")
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"frontdesk: configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings)
    try:
        return int(args.handler(settings, args) or 0)
    except ConfigError as error:
        print(f"frontdesk: configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
