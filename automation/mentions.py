"""@mention notifications: one internal email to each user a comment mentions for the first time.

The comment's event names whom to notify (``new_mentions``); each email is
queued under the effect key ``<event id>:mention:<user id>``, recorded in
the same transaction, so a redelivered or replayed event, in the embedded
runner or the Kafka worker, sends nothing twice.  A comment deleted before
the worker got to it, or a user deactivated meanwhile, gets no email.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.automation.effects import EffectLedger
from frontdesk.automation.services import AutomationServices
from frontdesk.events import CommentCreated, CommentEdited
from frontdesk.model import Comment, Ticket, User
from frontdesk.outbound.email.outgoing import queue_internal_email
from frontdesk.tickets.comments import MENTION

log = structlog.get_logger(__name__)

def readable_comment(body: str, names: dict[int, str]) -> str:
    """The comment with each ``@[user:<id>]`` token shown as ``@Name``."""
    return MENTION.sub(lambda m: f"@{names.get(int(m.group(1)), 'unknown user')}", body)


def mention_text(ticket: Ticket, author: str, recipient: str, comment: str) -> str:
    return (
        f"Hello {recipient},\n\n"
        f"{author} mentioned you in a comment on ticket #{ticket.id} \"{ticket.name}\":\n\n"
        f"{comment}\n"
    )


async def notify_mentions(services: AutomationServices, session: AsyncSession, ledger: EffectLedger,
                          event: CommentCreated | CommentEdited) -> bool:
    """Queue the mention emails ``event`` still owes; returns whether any was queued."""
    keys = {uid: f"{event.id}:mention:{uid}" for uid in event.new_mentions}
    pending = [uid for uid in event.new_mentions if not ledger.applied(keys[uid])]
    if not pending:
        return False
    comment = await session.get(Comment, event.comment_id)
    ticket = await session.get(Ticket, event.ticket_id) if event.ticket_id is not None else None
    if comment is None or ticket is None:
        log.info("mention_target_gone", event_id=event.id, comment_id=event.comment_id)
        return False
    ids = {*pending, *(comment.mentions or []), *([event.author_user_id] if event.author_user_id else [])}
    users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids)))).all()}
    author = users.get(event.author_user_id or -1)
    text = readable_comment(comment.body, {uid: u.name for uid, u in users.items()})
    queued = False
    for uid in pending:
        user = users.get(uid)
        if user is not None and user.is_active:
            await queue_internal_email(
                session, services.blobs, services.settings, ticket=ticket, to=user.email,
                subject=f"You were mentioned: {ticket.name}",
                text=mention_text(ticket, author.name if author else "Someone", user.name, text),
                idempotency_key=keys[uid],
            )
            queued = True
        ledger.record(keys[uid], "mention", ticket.id)
    return queued
