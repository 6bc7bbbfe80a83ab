"""Build the HTTP API application from its route modules.

Each module named in :data:`ROUTE_MODULES` exposes ``routes`` (an aiohttp
``RouteTableDef``) and ``OPENAPI`` (its OpenAPI 3.1 ``paths`` and optional
``components``).  To add endpoints, write such a module and add one line to
the tuple.  What lives outside ``api/`` (the webhook sub-app, readiness of
the SMTP listener and IMAP pollers) is handed in by the daemon through
:class:`AppExtras`, because ``api`` may not import ``channels``.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.api.auth import auth_middleware
from frontdesk.api.errors import error_middleware
from frontdesk.api.keys import BLOBS, OPENAPI_DOCUMENT, SESSIONS, SETTINGS, SHUTTING_DOWN
from frontdesk.api.middleware import json_errors_middleware, request_context_middleware
from frontdesk.api.parameters import query_text_middleware
from frontdesk.api.openapi import merge_openapi
from frontdesk.api.request_body import REQUEST_SCHEMAS, request_schemas, request_schema_middleware
from frontdesk.settings import Settings
from frontdesk.storage.blobs import BlobStore

ROUTE_MODULES = (
    "frontdesk.api.health",
    "frontdesk.api.metrics",
    "frontdesk.api.openapi",
    "frontdesk.api.tickets",
    "frontdesk.api.spam",
    "frontdesk.api.views",
    "frontdesk.api.content",
    "frontdesk.api.replies", "frontdesk.api.ticket_updates",
    "frontdesk.api.users",
    "frontdesk.api.sla",
    "frontdesk.api.pipelines",
    "frontdesk.api.audit",
    "frontdesk.api.properties",
    "frontdesk.api.automation_settings",
    "frontdesk.api.templates",
    "frontdesk.api.ticket_create",
    "frontdesk.api.bulk_move",
    "frontdesk.api.comments",
    "frontdesk.api.snippets",
    "frontdesk.api.stream",
    "frontdesk.api.contacts",
    "frontdesk.api.ticket_associations",
    "frontdesk.api.ticket_lifecycle",
    "frontdesk.api.inboxes",
)


@dataclass(frozen=True)
class Readiness:
    """One component's answer to "can you do your job right now?"."""

    ready: bool
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AppExtras:
    """What the daemon adds from outside ``api/``.

    ``subapps``: (prefix, application) pairs, e.g. ``("/webhooks/", webhook_app)``.
    ``openapi``: more OpenAPI fragments (``{"paths": ..., "components": ...}``).
    ``readiness``: named checks reported by ``/readyz``; any not ready makes it 503.
    """

    subapps: Sequence[tuple[str, web.Application]] = ()
    openapi: Sequence[Mapping[str, Any]] = ()
    readiness: Mapping[str, Callable[[], Readiness]] = field(default_factory=dict)


EXTRAS = web.AppKey("extras", AppExtras)


def route_modules() -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(name) for name in ROUTE_MODULES)


async def _announce_shutdown(app: web.Application) -> None:
    app[SHUTTING_DOWN].set()


def create_app(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    *,
    extra: AppExtras | None = None,
) -> web.Application:
    extras = extra or AppExtras()
    app = web.Application(
        middlewares=[
            request_context_middleware,
            json_errors_middleware,
            error_middleware,
            auth_middleware,
            query_text_middleware,
            request_schema_middleware,
        ],
        client_max_size=settings.http.max_body_size,
    )
    app[SETTINGS] = settings
    app[SESSIONS] = sessions
    app[BLOBS] = blobs
    app[EXTRAS] = extras
    app[SHUTTING_DOWN] = asyncio.Event()
    app.on_shutdown.append(_announce_shutdown)
    fragments: list[Mapping[str, Any]] = []
    for module in route_modules():
        app.router.add_routes(module.routes)
        fragments.append(module.OPENAPI)
    fragments.extend(extras.openapi)
    app[OPENAPI_DOCUMENT] = merge_openapi(fragments)
    app[REQUEST_SCHEMAS] = request_schemas(app[OPENAPI_DOCUMENT])
    for prefix, subapp in extras.subapps:
        app.add_subapp(prefix.rstrip("/"), subapp)
    return app
