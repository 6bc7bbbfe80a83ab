"""Bearer-token authentication: who is calling, with which role and ticket access.

Two kinds of token: the operator's ``FRONTDESK_API_TOKEN`` from the settings
(full access, for bootstrapping before any user exists), and per-user API
tokens whose SHA-256 is stored in ``api_tokens``.  Both are compared by hash,
so timing does not leak how much of a token was right.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Callable

from aiohttp import web
from sqlalchemy import select, update

from frontdesk.api.errors import ApiError
from frontdesk.api.keys import SESSIONS, SETTINGS
from frontdesk.model import ApiToken, User, utcnow
from frontdesk.model.access import SUPER_ADMIN
from frontdesk.tickets.access import Principal, principal_for_user

# Paths that answer without a token: probes, metrics scrapes, the spec, and
# webhooks, which carry their own signatures.
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/webhooks/")


PRINCIPAL = web.RequestKey("principal", Principal)

# ``last_used_at`` says when a token was last used to the minute, so that a
# read is not a write: without it every GET committed an UPDATE (a WAL flush
# on PostgreSQL, a locked database on SQLite) before answering.
LAST_USED_RESOLUTION = timedelta(minutes=1)

OPERATOR = Principal(user_id=None, role=SUPER_ADMIN, label="operator token")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def principal_for_token(request: web.Request, token: str) -> Principal | None:
    digest = hash_token(token)
    operator = request.app[SETTINGS].api_token
    if operator and hmac.compare_digest(digest, hash_token(operator.reveal())):
        return OPERATOR
    async with request.app[SESSIONS].begin() as session:
        row = (
            await session.execute(
                select(ApiToken.id, ApiToken.last_used_at, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None), User.is_active.is_(True))
            )
        ).first()
        if row is None:
            return None
        token_id, last_used_at, user = row
        principal = await principal_for_user(session, user)
        now = utcnow()
        if last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION:
            await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    return principal


@web.middleware
async def auth_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    token = _bearer(request)
    principal = await principal_for_token(request, token) if token else None
    if principal is None:
        raise ApiError(401, "unauthenticated", "a valid bearer token is required")
    request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require(request: web.Request, allowed: Callable[[Principal], bool], code: str, message: str) -> Principal:
    """The caller, when ``allowed(principal)``; else 403 ``code``."""
    principal = principal_of(request)
    if not allowed(principal):
        raise ApiError(403, code, message)
    return principal


def require_super_admin(request: web.Request) -> Principal:
    return require(request, lambda p: p.is_super_admin, "super_admin_required", "only a super admin may do this")


def require_property_settings(request: web.Request) -> Principal:
    return require(request, lambda p: p.can_edit_property_settings, "edit_property_settings_required",
                   "this needs the 'edit property settings' permission (admin or super admin)")


def require_account_access(request: web.Request) -> Principal:
    return require(request, lambda p: p.can_move_conversations, "account_access_required",
                   "this needs the 'account access' permission (or a super admin)")
