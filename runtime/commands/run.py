"""``frontdesk run``: start the ingestion daemon (SMTP, IMAP, HTTP API, webhooks, embedded automation)."""

from __future__ import annotations

import argparse

from frontdesk.settings import Settings

NAME = "run"
HELP = "run the daemon: SMTP, IMAP pollers, HTTP API and webhooks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(settings: Settings, args: argparse.Namespace) -> int:
    from frontdesk.runtime.daemon import run as run_daemon

    return run_daemon(settings)
