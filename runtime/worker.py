"""``frontdesk worker``: run the automation handlers over the Kafka event stream.

Wiring only: settings in; database sessions, the outbound mail sender and
the automation handler built; the faust app from :mod:`automation.faust_app`
run until SIGTERM / SIGINT.  ``python -m runtime.worker`` does the same with
settings from the environment (and ``FRONTDESK_CONFIG`` for a config file).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Awaitable, Callable, Sequence

import faust
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.automation.dead_letters import EventHandler
from frontdesk.automation.faust_app import create_worker_app
from frontdesk.automation.handlers import AutomationHandler
from frontdesk.automation.kafka_config import KafkaTopics, ensure_topics
from frontdesk.automation.services import AutomationServices
from frontdesk.automation.sla_timers import SlaTimerLoop
from frontdesk.background import RetryPolicy
from frontdesk.channels.webhooks.config import parse_webhook_config
from frontdesk.settings import ConfigError, Settings, load_settings
from frontdesk.storage.blobs import BlobStore
from frontdesk.storage.database import create_engine, session_factory
from frontdesk.outbound.deliveries import DeliveryLoop
from frontdesk.runtime.registries import deliverers
from frontdesk.runtime.event_loop import use_event_loop
from frontdesk.runtime.logs import configure_logging

# (settings, sessions) -> the handler and what to start with the worker.
HandlerFactory = Callable[
    [Settings, async_sessionmaker[AsyncSession]],
    tuple[EventHandler, Sequence[Callable[[], Awaitable[None]]]],
]


def automation_handler(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], outbound: DeliveryLoop | None = None
) -> EventHandler:
    """``automation.handlers.handle_event`` bound to its services (with its batch form).

    Without ``outbound`` the deliveries it queues are sent by whichever
    delivery loop polls next (the dead-letter replay command uses it so).
    """
    services = AutomationServices(settings=settings, sessions=sessions, blobs=BlobStore(settings.blob_dir),
                                  outbound=outbound)
    return AutomationHandler(services)


def automation_with_outbound(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> tuple[EventHandler, Sequence[Callable[[], Awaitable[None]]]]:
    """The production handler, with a delivery loop in this process sending what it queues at once, and the SLA timers.

    The loop may claim any due delivery, agent replies to Messenger and chat
    included, so it needs every channel's deliverer, as the daemon has.
    """
    outbound = DeliveryLoop(settings, sessions, BlobStore(settings.blob_dir),
                            deliverers=deliverers(parse_webhook_config(settings), sessions))
    # The SLA timer scanner runs here in Kafka mode; what it fires reaches the topic through the outbox relay.
    return automation_handler(settings, sessions, outbound), (outbound.start, SlaTimerLoop(sessions).start)


def run_worker(
    settings: Settings,
    *,
    handler_factory: HandlerFactory = automation_with_outbound,
    topics: KafkaTopics | None = None,
    policy: RetryPolicy = RetryPolicy(),
) -> int:
    """Block running the worker; returns the process exit code."""
    if not settings.kafka_bootstrap:
        raise ConfigError("frontdesk worker needs Kafka: set FRONTDESK_KAFKA_BOOTSTRAP or [kafka] bootstrap")
    topics = topics or KafkaTopics.from_environ(settings.kafka_bootstrap)
    use_event_loop()  # faust takes the policy's loop
    # Before faust subscribes: a topic created later would go unseen until a metadata refresh.
    asyncio.run(ensure_topics(topics))
    sessions = session_factory(create_engine(settings.reveal_database_url()))
    datadir = settings.data_dir / "worker"
    datadir.mkdir(parents=True, exist_ok=True)
    handler, on_start = handler_factory(settings, sessions)
    app = create_worker_app(topics, handler, sessions, datadir=datadir, policy=policy, on_start=on_start)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()  # runs the loop until SIGTERM / SIGINT
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def main() -> int:
    settings = load_settings(os.environ.get("FRONTDESK_CONFIG"))
    # As ``frontdesk worker`` does (runtime.cli): unconfigured, structlog
    # printed every info line of every event, whatever the log level said.
    configure_logging(settings)
    return run_worker(settings)


if __name__ == "__main__":
    sys.exit(main())
