"""``frontdesk worker``: run the automation handlers over the Kafka event stream."""

from __future__ import annotations

import argparse

from frontdesk.settings import Settings

NAME = "worker"
HELP = "run the automation worker on Kafka (needs [kafka] bootstrap)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(settings: Settings, args: argparse.Namespace) -> int:
    from frontdesk.runtime.worker import run_worker

    return run_worker(settings)
