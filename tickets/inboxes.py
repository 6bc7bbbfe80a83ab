"""Inboxes and moving a conversation between them.

There is one help desk (``frontdesk.defaults`` creates it, key ``help_desk``) and
any number of named conversations inboxes.  Every conversation is in one
inbox; ingest puts new ones in the help desk.  A move may reassign the
conversation and carry a comment, kept with the move as an internal note.

Tickets live in the help desk.  A conversation that moves out of it keeps
its ticket, which stays where it is, with the whole history.  One that
moves into the help desk without a ticket gets one (first open status of
its channel's pipeline), and the reassignment then also makes the new
owner the ticket's owner.  Who may move is the caller's to check
(super admins and users with the account access permission); the
conversation's ticket, if it has one, must be visible to them.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, ConversationMoved, TicketPropertyChanged
from frontdesk.model import Channel, Conversation, ConversationMove, Inbox, Message, Pipeline, Status, User, utcnow
from frontdesk.model.inboxes import CONVERSATIONS, HELP_DESK
from frontdesk.outbox import record_events
from frontdesk.tickets.access import Principal, visible_ticket
from frontdesk.tickets.audit import record_audit
from frontdesk.tickets.creation import create_ticket, ticket_created
from frontdesk.tickets.errors import Conflict, DomainError, NotFound
from frontdesk.tickets.header_fields import flatten
from frontdesk.tickets.pipelines import unique_internal_name

COMMENT_LIMIT = 10_000
NAME_LIMIT = 200


async def help_desk_id(session: AsyncSession) -> int | None:
    """The help desk's id (``frontdesk.defaults`` creates it), where new conversations go."""
    return await session.scalar(select(Inbox.id).where(Inbox.kind == HELP_DESK).order_by(Inbox.id).limit(1))


async def create_inbox(session: AsyncSession, name: str, *, key: str | None = None,
                       taken: Iterable[str] = ()) -> Inbox:
    """A new conversations inbox; its key is given or made from the name.  A name or key in use is a Conflict."""
    name = " ".join(name.split())
    if not name or len(name) > NAME_LIMIT:
        raise DomainError("field_invalid", f"'name' must be 1-{NAME_LIMIT} characters", field="name")
    existing = (await session.execute(select(Inbox.key, Inbox.name))).all()
    if any(n.lower() == name.lower() for _, n in existing):
        raise Conflict("inbox_name_taken", f"an inbox named {name!r} exists", field="name")
    keys = {k for k, _ in existing} | set(taken)
    if key is not None and key in keys:
        raise Conflict("inbox_key_taken", f"an inbox with key {key!r} exists", field="key")
    inbox = Inbox(key=key or unique_internal_name(name, keys, fallback="inbox"), name=name, kind=CONVERSATIONS)
    session.add(inbox)
    await session.flush()
    return inbox


async def _target(session: AsyncSession, inbox_id: int) -> Inbox:
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        raise DomainError("unknown_inbox", f"no inbox {inbox_id}", field="inbox_id")
    return inbox


async def _owner(session: AsyncSession, owner_id: int) -> int:
    user = await session.get(User, owner_id)
    if user is None or not user.is_active:
        raise DomainError("unknown_user", f"no active user {owner_id}", field="owner_id")
    return owner_id


async def visible_conversation(session: AsyncSession, principal: Principal, conversation_id: int) -> Conversation:
    """The conversation, if its ticket (when it has one) is visible to the principal; NotFound otherwise."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("conversation")
    if conversation.ticket_id is not None:
        try:
            await visible_ticket(session, principal, conversation.ticket_id)
        except NotFound:
            raise NotFound("conversation") from None
    return conversation


async def _ticket_for(session: AsyncSession, conversation: Conversation, actor: Actor) -> int:
    """A ticket for a conversation coming into the help desk: named after its first subject, in its channel's pipeline."""
    channel = await session.get(Channel, conversation.channel_id) if conversation.channel_id else None
    pipeline_id = channel.pipeline_id if channel is not None else await session.scalar(
        select(Pipeline.id).order_by(Pipeline.position, Pipeline.id).limit(1))
    status = await session.scalar(select(Status).where(Status.pipeline_id == pipeline_id, Status.is_closed.is_(False))
                                  .order_by(Status.position, Status.id).limit(1))
    if status is None:
        raise Conflict("no_open_status", "the conversation's pipeline has no open status for its ticket")
    subject = await session.scalar(select(Message.subject).where(Message.conversation_id == conversation.id)
                                   .order_by(Message.id).limit(1))
    ticket = await create_ticket(
        session, actor=actor, status=status, source=conversation.channel, name=flatten(subject)[:500] or
        f"Conversation {conversation.id}", channel_id=conversation.channel_id, contact_id=conversation.contact_id,
        owner_id=conversation.owner_id, record=False)
    ticket.origin_conversation_id = conversation.id
    conversation.ticket_id = ticket.id
    await session.execute(update(Message).where(Message.conversation_id == conversation.id,
                                                Message.ticket_id.is_(None)).values(ticket_id=ticket.id))
    await record_events(session, ticket_created(ticket, actor))
    return ticket.id


async def move_conversation(session: AsyncSession, principal: Principal, conversation_id: int, inbox_id: int, *,
                            owner_id: int | None = None, reassign: bool = False,
                            comment: str | None = None) -> ConversationMove:
    """Move the conversation to ``inbox_id``; with ``reassign``, ``owner_id`` (None: nobody) becomes its owner."""
    conversation = await visible_conversation(session, principal, conversation_id)
    target = await _target(session, inbox_id)
    if conversation.inbox_id == target.id:
        raise Conflict("already_in_inbox", f"the conversation is already in {target.name!r}", field="inbox_id")
    if reassign and owner_id is not None:
        await _owner(session, owner_id)
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > COMMENT_LIMIT:
        raise DomainError("field_too_long", f"'comment' is longer than {COMMENT_LIMIT} characters", field="comment")
    actor = Actor.agent(principal.user_id)
    before = {"inbox_id": conversation.inbox_id, "owner_id": conversation.owner_id,
              "ticket_id": conversation.ticket_id}
    if reassign:
        conversation.owner_id = owner_id
    created = False
    if target.kind == HELP_DESK:
        if conversation.ticket_id is None:
            await _ticket_for(session, conversation, actor)
            created = True
        elif reassign:
            ticket = await visible_ticket(session, principal, conversation.ticket_id)
            if ticket.owner_id != owner_id:
                change = {"owner_id": {"from": ticket.owner_id, "to": owner_id}}
                ticket.owner_id, ticket.updated_at = owner_id, utcnow()
                await record_events(session, TicketPropertyChanged(ticket_id=ticket.id, actor=actor, changes=change))
    move = ConversationMove(conversation_id=conversation.id, ticket_id=conversation.ticket_id,
                            from_inbox_id=conversation.inbox_id, to_inbox_id=target.id,
                            owner_id=conversation.owner_id, comment=comment, actor_user_id=principal.user_id)
    conversation.inbox_id = target.id
    session.add(move)
    await record_events(session, ConversationMoved(
        ticket_id=conversation.ticket_id, actor=actor, conversation_id=conversation.id,
        from_inbox_id=move.from_inbox_id, to_inbox_id=target.id, owner_id=conversation.owner_id,
        ticket_created=created))
    record_audit(session, principal, "conversation.moved", "conversation", conversation.id, before=before,
                 after={"inbox_id": target.id, "owner_id": conversation.owner_id, "ticket_id": conversation.ticket_id,
                        "comment": comment})
    await session.flush()
    return move
