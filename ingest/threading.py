"""Threading: which ticket and conversation an inbound message belongs to, and why.

Lookups gather the facts (which referenced Message-IDs we know, which
tickets exist, whether the sender takes part in a ticket) for a whole
batch of mail in a few queries (:class:`ThreadFacts`); for each message,
in arrival order, :func:`choose_email_thread` then decides as a pure
function, in this order:

1. ``forwarded``: a forwarded mail always starts a new ticket.
2. For each referenced Message-ID, the direct parent first (In-Reply-To,
   then References newest first, then the message's own Message-ID):
   ``reply_token`` when it is one of our signed Message-IDs naming an
   existing ticket; otherwise ``in_reply_to`` / ``references`` /
   ``same_message_id`` when a stored message has that Message-ID (ours
   or theirs, so replies to replies thread too).  A re-sent copy of a
   stored message (``same_message_id``) only counts from the same sender.
3. ``subject_token``: ``[#1234]`` in the subject, trusted only when the
   sender is already a participant of ticket 1234 (anyone can type a
   number).
4. ``new_ticket``.

The subject alone never threads: the same subject from two senders is
two tickets.

A deleted ticket is not there for threading: the lookups leave it (and
the messages and conversations on it) out, so a reply to it goes on by
the other rules and, most often, starts a new ticket.  Somebody deleted
the old one on purpose; the customer's new mail still reaches a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Conversation, Message, Ticket, TicketParticipant
from frontdesk.reply_tokens import ticket_from_message_id
from frontdesk.ingest.message import InboundMessage

FORWARDED = "forwarded"
REPLY_TOKEN = "reply_token"
IN_REPLY_TO = "in_reply_to"
REFERENCES = "references"
SAME_MESSAGE_ID = "same_message_id"
SUBJECT_TOKEN = "subject_token"
THREAD_KEY = "thread_key"
BOUNCE_REF = "bounce"
NEW_TICKET = "new_ticket"
UNLINKED = "unlinked"  # a screened message that refers to nothing we know

_HEADER_RULE = {"In-Reply-To": IN_REPLY_TO, "References": REFERENCES, "Message-ID": SAME_MESSAGE_ID}
SUBJECT_TOKEN_PATTERN = re.compile(r"\[#(\d{1,12})\]")
MAX_REFERENCES = 50  # a References header can be long; the newest ids matter


@dataclass(frozen=True)
class KnownMessage:
    """A stored message that some inbound header points at."""

    id: int
    ticket_id: int | None
    conversation_id: int | None
    from_address: str | None


@dataclass(frozen=True)
class ThreadMatch:
    """Where a message goes and the reason, stored on the message as ``match_rule`` / ``match_detail``."""

    rule: str
    detail: str
    ticket_id: int | None = None
    conversation_id: int | None = None
    bounced_message_id: int | None = None

    @property
    def starts_ticket(self) -> bool:
        return self.ticket_id is None and self.conversation_id is None


def _clean_id(value: str) -> str:
    return value.strip().strip("<>").strip()


def referenced_ids(message: InboundMessage) -> list[tuple[str, str]]:
    """(header, Message-ID) pairs to try, the most direct parent first, without repeats."""
    pairs: list[tuple[str, str]] = [("In-Reply-To", i) for i in message.in_reply_to]
    pairs += [("References", i) for i in reversed(message.references[-MAX_REFERENCES:])]
    if message.external_id:
        pairs.append(("Message-ID", message.external_id))
    seen: set[str] = set()
    result = []
    for header, value in pairs:
        value = _clean_id(value)
        if value and value not in seen and len(value) <= 998:
            seen.add(value)
            result.append((header, value))
    return result


def subject_ticket_numbers(subject: str | None) -> list[int]:
    return [int(n) for n in SUBJECT_TOKEN_PATTERN.findall(subject or "")]


def choose_email_thread(
    message: InboundMessage,
    candidates: list[tuple[str, str]],
    *,
    signed: dict[str, int],
    known: dict[str, KnownMessage],
    participant_tickets: set[int],
) -> ThreadMatch:
    """Decide where an email goes from the facts the lookups found (see the module docstring)."""
    if message.is_forwarded:
        return ThreadMatch(FORWARDED, "forwarded message starts a new ticket")
    for header, value in candidates:
        stored = known.get(value)
        if header != "Message-ID" and value in signed:
            return ThreadMatch(REPLY_TOKEN, f"{header}: <{value}>", ticket_id=signed[value],
                               conversation_id=stored.conversation_id if stored else None)
        if stored is None or (stored.ticket_id is None and stored.conversation_id is None):
            continue
        if header == "Message-ID" and stored.from_address != message.sender_address:
            continue
        return ThreadMatch(_HEADER_RULE[header], f"{header}: <{value}>", ticket_id=stored.ticket_id,
                           conversation_id=stored.conversation_id)
    for number in subject_ticket_numbers(message.subject):
        if number in participant_tickets:
            return ThreadMatch(SUBJECT_TOKEN, f"Subject: [#{number}] from participant {message.sender_address}",
                               ticket_id=number)
    return ThreadMatch(NEW_TICKET, "no reference, token or participant subject token matched")


async def known_messages(session: AsyncSession, ids: Iterable[str]) -> dict[str, KnownMessage]:
    """Stored messages by Message-ID; where several share one, the newest that is threaded wins."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Message.id, Message.external_id, Message.ticket_id, Message.conversation_id, Message.from_address)
        .outerjoin(Ticket, Ticket.id == Message.ticket_id)
        .where(Message.external_id.in_(ids), Ticket.deleted_at.is_(None))
        .order_by(Message.id)
    )
    found: dict[str, KnownMessage] = {}
    for row in rows:
        remember_known(found, row.external_id, KnownMessage(row.id, row.ticket_id, row.conversation_id,
                                                            row.from_address))
    return found


def remember_known(found: dict[str, KnownMessage], external_id: str, stored: KnownMessage) -> None:
    """Add ``stored`` (newer than everything in ``found``) under its Message-ID, unless it would hide a threaded one."""
    if stored.ticket_id is None and stored.conversation_id is None and external_id in found:
        return
    found[external_id] = stored


@dataclass
class ThreadFacts:
    """What the lookups found for a whole batch of mail, and what the batch itself has stored so far.

    Gathered in three queries for the batch (:func:`gather_thread_facts`);
    :meth:`learn` adds each message as it is stored, so a reply threads
    onto a parent that arrived earlier in the same batch.
    """

    known: dict[str, KnownMessage] = field(default_factory=dict)  # by Message-ID
    tickets: set[int] = field(default_factory=set)  # live tickets that reply tokens name
    participants: set[tuple[int, str]] = field(default_factory=set)  # (ticket, address)

    def learn(self, external_id: str | None, stored: KnownMessage, participants: Iterable[str]) -> None:
        if external_id:
            remember_known(self.known, _clean_id(external_id), stored)
        if stored.ticket_id is not None:
            self.tickets.add(stored.ticket_id)
            self.participants.update((stored.ticket_id, address) for address in participants)


def _lookup_ids(message: InboundMessage) -> list[str]:
    return [value for _, value in referenced_ids(message)] + [r for r in map(_clean_id, message.bounced_refs) if r]


async def gather_thread_facts(session: AsyncSession, messages: list[InboundMessage], secret_key: bytes) -> ThreadFacts:
    """The threading facts every message of a batch needs, in one query each."""
    ids = [value for message in messages for value in _lookup_ids(message)]
    tokens = {ticket_from_message_id(secret_key, value) for value in ids}
    subject_numbers = {n for message in messages for n in subject_ticket_numbers(message.subject)}
    senders = {message.sender_address for message in messages if message.sender_address}
    return ThreadFacts(
        known=await known_messages(session, ids),
        tickets=await existing_tickets(session, {t for t in tokens if t is not None}),
        participants=await participants_among(session, subject_numbers, senders),
    )


async def existing_tickets(session: AsyncSession, ticket_ids: Iterable[int]) -> set[int]:
    ticket_ids = set(ticket_ids)
    if not ticket_ids:
        return set()
    return set((await session.scalars(
        select(Ticket.id).where(Ticket.id.in_(ticket_ids), Ticket.deleted_at.is_(None)))).all())


async def participants_among(session: AsyncSession, ticket_ids: Iterable[int],
                             addresses: Iterable[str]) -> set[tuple[int, str]]:
    """Which of ``addresses`` take part in which of the live ``ticket_ids``."""
    ticket_ids, addresses = set(ticket_ids), set(addresses)
    if not ticket_ids or not addresses:
        return set()
    rows = await session.execute(
        select(TicketParticipant.ticket_id, TicketParticipant.address)
        .join(Ticket, Ticket.id == TicketParticipant.ticket_id)
        .where(TicketParticipant.ticket_id.in_(ticket_ids), TicketParticipant.address.in_(addresses),
               Ticket.deleted_at.is_(None))
    )
    return {(row.ticket_id, row.address) for row in rows}


def thread_email(message: InboundMessage, facts: ThreadFacts, secret_key: bytes) -> ThreadMatch:
    """Find the ticket an email replies to (or decide it starts one), from the batch's facts."""
    candidates = referenced_ids(message)
    tokens = {value: ticket_from_message_id(secret_key, value) for _, value in candidates}
    signed = {value: ticket for value, ticket in tokens.items() if ticket is not None and ticket in facts.tickets}
    participants = {number for number in subject_ticket_numbers(message.subject)
                    if (number, message.sender_address) in facts.participants}
    return choose_email_thread(message, candidates, signed=signed, known=facts.known, participant_tickets=participants)


def link_screened(message: InboundMessage, facts: ThreadFacts, secret_key: bytes) -> ThreadMatch:
    """Where a screened message (auto-reply, bounce, loop) belongs, if anywhere; it never starts a ticket.

    A bounce is tied to the outbound message it reports on through the
    Message-IDs the screening stage found in the report.
    """
    refs = [_clean_id(r) for r in message.bounced_refs if _clean_id(r)]
    if refs:
        for ref in refs:
            stored = facts.known.get(ref)
            if stored is not None:
                return ThreadMatch(BOUNCE_REF, f"bounce of <{ref}>", ticket_id=stored.ticket_id,
                                   conversation_id=stored.conversation_id, bounced_message_id=stored.id)
        signed = {ref: ticket_from_message_id(secret_key, ref) for ref in refs}
        for ref, ticket in signed.items():
            if ticket in facts.tickets:
                return ThreadMatch(BOUNCE_REF, f"bounce of <{ref}>", ticket_id=ticket)
    # A screened message never starts a ticket, forwarded or not; it may only join one.
    match = thread_email(replace(message, is_forwarded=False), facts, secret_key)
    if match.rule == NEW_TICKET:
        return ThreadMatch(UNLINKED, "refers to no message or ticket we know")
    return match


async def thread_by_key(session: AsyncSession, message: InboundMessage, channel_id: int) -> ThreadMatch:
    """Non-email channels: the conversation is (channel, thread key), e.g. Page + PSID or a chat session."""
    if not message.thread_key:
        return ThreadMatch(NEW_TICKET, "no thread key")
    conversation = await session.scalar(
        select(Conversation)
        .outerjoin(Ticket, Ticket.id == Conversation.ticket_id)
        .where(Conversation.channel_id == channel_id, Conversation.thread_key == message.thread_key[:998],
               Ticket.deleted_at.is_(None))
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    if conversation is None:
        return ThreadMatch(NEW_TICKET, f"new thread {message.thread_key}")
    return ThreadMatch(THREAD_KEY, f"thread {message.thread_key}", ticket_id=conversation.ticket_id,
                       conversation_id=conversation.id)
