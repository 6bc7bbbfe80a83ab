"""Audit records: who changed what, when, before and after.

Every admin change (API or ``frontdesk config apply``) calls
:func:`record_audit`; the entry is added to the caller's session, so it
commits (or rolls back) with the change it describes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import AuditEntry
from frontdesk.tickets.access import Principal


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def snapshot(row: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The named attributes of ``row`` as JSON-safe values, for the before/after of an entry."""
    return {name: _plain(getattr(row, name)) for name in fields}


def record_audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    entity: str,
    entity_id: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_user_id=principal.user_id,
        actor_label=principal.label or principal.role,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=_plain(before),
        after=_plain(after),
    )
    session.add(entry)
    return entry
