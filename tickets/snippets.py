"""Snippets: who sees and who changes them, and the one-shortcut-per-scope rule.

A snippet is shared with everyone (scope ``shared``) or private to the user
who made it (scope ``user:<id>``).  Everyone sees the shared ones and their
own; someone else's private snippet is 404, never 403.  Shared snippets
are written by admins (they reach every agent's reply editor); private ones
by their owner.  A shortcut is unique within its scope, so a private
snippet may shadow a shared one.  The body's template syntax is checked by
the caller with the template renderer (``outbound.email.render``).
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Snippet
from frontdesk.model.comments import SHARED
from frontdesk.tickets.access import Principal
from frontdesk.tickets.errors import Conflict, DomainError, Forbidden, NotFound

SHORTCUT = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}", re.ASCII)
MAX_BODY = 50_000


def check_shortcut(shortcut: str) -> str:
    if not SHORTCUT.fullmatch(shortcut):
        raise DomainError("snippet_shortcut_invalid",
                          "a shortcut is 1-50 lowercase letters, digits, '_' and '-', starting with a letter or digit",
                          field="shortcut")
    return shortcut


def private_scope(user_id: int) -> str:
    return f"user:{user_id}"


def scope_for(principal: Principal, shared: bool) -> str:
    """The scope a new snippet of ``principal`` goes to; 403 if they may not write there."""
    if shared:
        if not principal.can_edit_property_settings:
            raise Forbidden("shared_snippet_admin_only", "only admins create or change shared snippets")
        return SHARED
    if principal.user_id is None:
        raise Forbidden("user_required", "a private snippet belongs to a user; the operator token has none")
    return private_scope(principal.user_id)


def snippet_visibility(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Snippet``: the shared ones and the principal's own."""
    if principal.user_id is None:
        return Snippet.scope == SHARED
    return or_(Snippet.scope == SHARED, Snippet.scope == private_scope(principal.user_id))


async def visible_snippet(session: AsyncSession, principal: Principal, snippet_id: int) -> Snippet:
    snippet = await session.scalar(select(Snippet).where(Snippet.id == snippet_id, snippet_visibility(principal)))
    if snippet is None:
        raise NotFound("snippet")
    return snippet


def check_may_change(principal: Principal, snippet: Snippet) -> None:
    if snippet.scope == SHARED:
        scope_for(principal, shared=True)


async def check_shortcut_free(session: AsyncSession, scope: str, shortcut: str, snippet_id: int | None = None) -> None:
    query = select(Snippet.id).where(Snippet.scope == scope, Snippet.shortcut == shortcut)
    if snippet_id is not None:
        query = query.where(Snippet.id != snippet_id)
    if await session.scalar(query.limit(1)) is not None:
        raise Conflict("snippet_shortcut_taken", f"the shortcut {shortcut!r} is taken in this scope", field="shortcut")
