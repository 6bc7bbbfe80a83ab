"""Structured logging for every process: structlog, JSON by default, stdlib logging routed through it.

Secrets from the settings are masked in the rendered line as a last line of
defence: :class:`frontdesk.settings.Secret` already hides itself, but a
library might log a connection string or a header it was given.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Iterable, Mapping, TextIO

import structlog

from frontdesk.settings import Secret, Settings

MASK = "***"
# Libraries whose INFO chatter drowns our own lines.
QUIET_LOGGERS = ("aiohttp.access", "aiosqlite", "asyncio", "mail.log", "sqlalchemy.engine", "alembic.runtime.migration")


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold, for masking."""
    candidates: list[Secret | None] = [settings.secret_key, settings.api_token, settings.database_password]
    candidates.extend(mailbox.password for mailbox in settings.imap_mailboxes)
    if settings.smarthost is not None:
        candidates.append(settings.smarthost.password)
    candidates.extend(_channel_secrets(settings.channels))
    values = [c.reveal() for c in candidates if c]
    # Longest first, so a secret containing another is masked whole.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _channel_secrets(tree: Any) -> Iterable[Secret]:
    """The Secrets in the raw webhook channel tables (the settings wrap every secret-named value)."""
    if isinstance(tree, Secret):
        yield tree
    elif isinstance(tree, Mapping):
        for value in tree.values():
            yield from _channel_secrets(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _channel_secrets(item)


class MaskingRenderer:
    """Wraps the final renderer and blanks any known secret in its output."""

    def __init__(self, renderer: Any, secrets: Iterable[str]) -> None:
        self.renderer = renderer
        self.secrets = list(secrets)

    def __call__(self, logger: Any, method: str, event_dict: Any) -> Any:
        rendered = self.renderer(logger, method, event_dict)
        for secret in self.secrets:
            rendered = rendered.replace(secret, MASK)
        return rendered


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one stream, one line per event."""
    output = stream or sys.stderr
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if settings.log_format == "console":
        renderer: Any = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    shared.append(structlog.processors.UnicodeDecoder())

    structlog.configure(
        # A line below the level is dropped before the processors run: the
        # worker logs a few info lines per event, and at WARNING each still
        # cost its timestamp and stack rendering.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            MaskingRenderer(renderer, settings_secrets(settings)),
        ],
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
