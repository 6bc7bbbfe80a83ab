"""The vocabulary of a pipeline's automation settings and its rules: action kinds, recipients, source filter.

Shared by the admin API and ``frontdesk config apply``, so both accept and
refuse the same settings.
"""

from __future__ import annotations

from typing import Any

from frontdesk.model.automation import NOTIFY, SEND_EMAIL, TO_OWNER, TO_OWNER_TEAM, TO_TEAM, TO_USER
from frontdesk.model.channels import CHAT, MESSENGER
from frontdesk.tickets.errors import DomainError

ACTION_KINDS = (SEND_EMAIL, NOTIFY)
RECIPIENT_KINDS = (TO_USER, TO_TEAM, TO_OWNER, TO_OWNER_TEAM)
# Email and forms always get status actions; these two only when opted in.
OPT_IN_SOURCES = (CHAT, MESSENGER)


def check_action_sources(sources: Any) -> list[str]:
    """The opt-in sources, sorted and once each, or ``action_sources_invalid``."""
    if not isinstance(sources, list) or any(s not in OPT_IN_SOURCES for s in sources):
        raise DomainError("action_sources_invalid",
                          f"action_sources lists which of {', '.join(OPT_IN_SOURCES)} get status actions")
    return sorted(set(sources))
