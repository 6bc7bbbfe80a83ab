"""The loop guard: which events automation must not act on at all.

Our own automated mail coming back (an auto-reply to our auto-reply, a
bounce quoting us) is stored but never acted on, and a chain of events
caused by automation stops at :data:`MAX_DEPTH` steps, whatever the
configuration says, so two rules can never ping-pong forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from frontdesk.events import DomainEvent, MessageReceived, MessageScreened

# A customer reply (0) -> status change (1) -> its actions' mails (2) is the
# longest chain the default configuration produces; allow some headroom.
MAX_DEPTH = 4

SCREENED = "screened"
OWN_AUTOMATED_MAIL = "own_automated_mail"
TOO_DEEP = "depth_limit"


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str | None = None


def admit(event: DomainEvent, max_depth: int = MAX_DEPTH) -> Admission:
    if isinstance(event, MessageScreened):
        return Admission(False, SCREENED)
    if isinstance(event, MessageReceived) and event.is_automated:
        return Admission(False, OWN_AUTOMATED_MAIL)
    if event.depth >= max_depth:
        return Admission(False, TOO_DEEP)
    return Admission(True)


# An autoresponder that ignores Auto-Submitted and answers on a fresh
# thread creates a new ticket each time, and each new ticket would send
# "Ticket received" again.  Capping automated mail per recipient and hour
# ends that loop even when nothing in the mail gives it away.
AUTOMATED_MAIL_WINDOW_SECONDS = 3600
MAX_AUTOMATED_MAILS_PER_WINDOW = 5
RATE_LIMITED = "automated_mail_rate_limit"


def automated_mail_allowed(sent_in_window: int, limit: int = MAX_AUTOMATED_MAILS_PER_WINDOW) -> bool:
    """May one more automated email go to a recipient who got ``sent_in_window`` in the window?"""
    return sent_in_window < limit
