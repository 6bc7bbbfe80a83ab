"""Internal comments on a ticket: writing, editing and deleting them, and who they @mention.

A mention is the token ``@[user:<id>]`` in the comment's text (what an
editor's mention picker inserts; the id, unlike a name, never becomes
ambiguous).  Every mentioned user must exist, be active and be able to see
the ticket (:mod:`tickets.access`), or the whole comment is refused naming
them.  Only the comment's author edits or deletes it.  Each change records
its event in the caller's transaction; the events carry the users mentioned
for the first time, whom automation notifies once
(:mod:`automation.mentions`).  Edits and deletions are audited.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor, CommentCreated, CommentDeleted, CommentEdited
from frontdesk.model import Comment, Ticket, User, utcnow
from frontdesk.outbox import record_events
from frontdesk.tickets.access import Principal, may_see_ticket, principal_for_user
from frontdesk.tickets.audit import record_audit, snapshot
from frontdesk.tickets.errors import DomainError, Forbidden, NotFound

MAX_BODY = 20_000
# Ten digits at most: anything longer names no user (and stays off the database driver).
MAX_USER_ID = 2**31 - 1
MENTION = re.compile(r"@\[user:([0-9]{1,10})\]", re.ASCII)
AUDITED_FIELDS = ("id", "ticket_id", "author_user_id", "body", "mentions")


def mentioned_user_ids(body: str) -> list[int]:
    """The user ids ``body`` mentions, each once, in order of first mention."""
    return list(dict.fromkeys(int(match) for match in MENTION.findall(body)))


def check_body(body: Any) -> str:
    if not isinstance(body, str) or not body.strip():
        raise DomainError("field_required", "'body' must be a non-empty string", field="body")
    if len(body) > MAX_BODY:
        raise DomainError("field_too_long", f"'body' is longer than {MAX_BODY} characters", field="body")
    return body


def _person(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "email": user.email}


async def check_mentions(session: AsyncSession, ticket_id: int, user_ids: Iterable[int]) -> list[User]:
    """The mentioned users; 422 naming those who do not exist or cannot see the ticket."""
    wanted = list(user_ids)
    if not wanted:
        return []
    # An id beyond the integer column names nobody (and would make PostgreSQL's driver raise).
    possible = [uid for uid in wanted if uid <= MAX_USER_ID]
    found = {u.id: u for u in (await session.scalars(
        select(User).where(User.id.in_(possible), User.is_active.is_(True)))).all()} if possible else {}
    unknown = [uid for uid in wanted if uid not in found]
    if unknown:
        raise DomainError("mention_unknown_user", f"no active user with id {', '.join(map(str, unknown))}",
                          field="body", user_ids=unknown)
    blind = [found[uid] for uid in wanted
             if not await may_see_ticket(session, await principal_for_user(session, found[uid]), ticket_id)]
    if blind:
        names = ", ".join(f"{u.name} <{u.email}>" for u in blind)
        raise DomainError("mention_without_access", f"cannot mention users who cannot see this ticket: {names}",
                          field="body", users=[_person(u) for u in blind])
    return [found[uid] for uid in wanted]


def _to_notify(mentioned: list[int], already: Iterable[int], author_id: int | None) -> tuple[int, ...]:
    """Mentioned now and not before, and not the author themself."""
    seen = set(already)
    return tuple(uid for uid in mentioned if uid not in seen and uid != author_id)


def _require_user(principal: Principal) -> int:
    if principal.user_id is None:
        raise Forbidden("user_required", "comments are written by a user; the operator token has none")
    return principal.user_id


async def add_comment(session: AsyncSession, principal: Principal, ticket: Ticket, body: Any) -> Comment:
    author_id = _require_user(principal)
    text = check_body(body)
    mentions = mentioned_user_ids(text)
    await check_mentions(session, ticket.id, mentions)
    now = utcnow()
    comment = Comment(ticket_id=ticket.id, author_user_id=author_id, body=text, mentions=mentions,
                      created_at=now, updated_at=now)
    session.add(comment)
    await session.flush()
    await record_events(session, CommentCreated(
        ticket_id=ticket.id, actor=Actor.agent(author_id), comment_id=comment.id, author_user_id=author_id,
        new_mentions=_to_notify(mentions, (), author_id)))
    return comment


async def authored_comment(session: AsyncSession, principal: Principal, ticket: Ticket, comment_id: int) -> Comment:
    """The ticket's comment ``comment_id``; 404 if there is none, 403 if the caller did not write it."""
    comment = await session.scalar(select(Comment).where(Comment.id == comment_id, Comment.ticket_id == ticket.id))
    if comment is None:
        raise NotFound("comment")
    if comment.author_user_id is None or comment.author_user_id != principal.user_id:
        raise Forbidden("not_comment_author", "only the comment's author may change or delete it")
    return comment


async def edit_comment(session: AsyncSession, principal: Principal, comment: Comment, body: Any) -> Comment:
    text = check_body(body)
    mentions = mentioned_user_ids(text)
    await check_mentions(session, comment.ticket_id, mentions)
    before = snapshot(comment, AUDITED_FIELDS)
    new = _to_notify(mentions, comment.mentions or [], comment.author_user_id)
    comment.body = text
    comment.mentions = mentions
    comment.updated_at = utcnow()
    await session.flush()
    record_audit(session, principal, "comment.edited", "comment", comment.id,
                 before=before, after=snapshot(comment, AUDITED_FIELDS))
    await record_events(session, CommentEdited(
        ticket_id=comment.ticket_id, actor=Actor.agent(principal.user_id), comment_id=comment.id,
        author_user_id=comment.author_user_id, new_mentions=new))
    return comment


async def delete_comment(session: AsyncSession, principal: Principal, comment: Comment) -> None:
    record_audit(session, principal, "comment.deleted", "comment", comment.id,
                 before=snapshot(comment, AUDITED_FIELDS))
    await record_events(session, CommentDeleted(
        ticket_id=comment.ticket_id, actor=Actor.agent(principal.user_id), comment_id=comment.id,
        author_user_id=comment.author_user_id))
    await session.delete(comment)
