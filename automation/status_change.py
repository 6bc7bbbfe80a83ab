"""Move a ticket to another status and describe the move for ``ticket.status_changed``.

Shared by the status triggers and the ticket update API, so closing and
reopening stamp ``closed_at`` / ``reopened_at`` the same way everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from frontdesk.model import Status, Ticket, utcnow


def move_ticket(ticket: Ticket, old: Status, new: Status, now: datetime | None = None) -> dict[str, Any]:
    """Apply the move to ``ticket`` and return the event payload."""
    now = now or utcnow()
    reopened = old.is_closed and not new.is_closed
    ticket.status_id = new.id
    if new.is_closed and not old.is_closed:
        ticket.closed_at = now
    if reopened:
        ticket.reopened_at = now
        ticket.closed_at = None
    return {
        "pipeline_id": ticket.pipeline_id,
        "from_status_id": old.id,
        "to_status_id": new.id,
        "from_status": old.internal_name,
        "to_status": new.internal_name,
        "is_closed": new.is_closed,
        "reopened": reopened,
    }
