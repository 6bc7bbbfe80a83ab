"""Threading: the pure decision on hand-built messages, then at scale on generated real mail.

The scale test generates (seeded) more than 2,000 new tickets and 2,000
replies as RFC 5322 bytes: replies by In-Reply-To, replies to replies,
References-only clients, replies to our signed Message-IDs, Outlook-style
replies carrying only ``[#id]`` in the subject, the same subject from
other senders, strangers quoting someone else's ticket number, and
forwarded mail.  Every mail knows which logical conversation it belongs
to; after ingesting them all, every mail must sit on its conversation's
ticket and no two conversations may share one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import pytest
from sqlalchemy import func, select

from frontdesk.model import Message, Ticket
from frontdesk.reply_tokens import make_message_id
from frontdesk.ingest.context import IngestContext
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.pipeline import ingest_email
from frontdesk.ingest.threading import (
    FORWARDED,
    IN_REPLY_TO,
    NEW_TICKET,
    REFERENCES,
    REPLY_TOKEN,
    SUBJECT_TOKEN,
    KnownMessage,
    choose_email_thread,
    referenced_ids,
)
from _ingest_mail import mail, smtp_envelope

SECRET = b"test-secret-key"


def _message(**kwargs) -> InboundMessage:
    defaults = dict(channel="email", channel_key="support@acme.test", source="smtp", raw_blob="0" * 64,
                    content_hash="0" * 64, sender_address="ada@example.com")
    return InboundMessage(**{**defaults, **kwargs})


def _choose(message: InboundMessage, *, signed=None, known=None, participant_tickets=()) -> tuple[str, int | None]:
    match = choose_email_thread(message, referenced_ids(message), signed=signed or {}, known=known or {},
                                participant_tickets=set(participant_tickets))
    return match.rule, match.ticket_id


def test_referenced_ids_try_the_direct_parent_first():
    message = _message(in_reply_to=["<b@x>"], references=["a@x", "b@x", "c@x"], external_id="d@x")
    assert referenced_ids(message) == [("In-Reply-To", "b@x"), ("References", "c@x"), ("References", "a@x"),
                                       ("Message-ID", "d@x")]


def test_rules_apply_in_order():
    known = {"parent@x": KnownMessage(1, 10, 100, "ada@example.com"), "old@x": KnownMessage(2, 20, 200, None)}
    reply = _message(in_reply_to=["parent@x"], references=["old@x"], subject="[#30] hi")
    assert _choose(reply, known=known, participant_tickets={30}) == (IN_REPLY_TO, 10)
    assert _choose(reply, known=known, signed={"parent@x": 40}, participant_tickets={30}) == (REPLY_TOKEN, 40)
    refs_only = _message(references=["old@x", "unknown@x"], subject="[#30] hi")
    assert _choose(refs_only, known=known, participant_tickets={30}) == (REFERENCES, 20)
    assert _choose(_message(subject="Re: [#30] hi"), participant_tickets={30}) == (SUBJECT_TOKEN, 30)
    assert _choose(_message(subject="Re: [#30] hi"), participant_tickets=set()) == (NEW_TICKET, None)
    forwarded = _message(in_reply_to=["parent@x"], subject="Fwd: hi", is_forwarded=True)
    assert _choose(forwarded, known=known) == (FORWARDED, None)


def test_a_resent_copy_threads_only_from_the_same_sender():
    known = {"m@x": KnownMessage(1, 10, 100, "ada@example.com")}
    assert _choose(_message(external_id="m@x"), known=known) == ("same_message_id", 10)
    assert _choose(_message(external_id="m@x", sender_address="eve@evil.test"), known=known) == (NEW_TICKET, None)


# -- at scale ----------------------------------------------------------------

SUBJECTS = [
    "Invoice question", "Cannot log in", "Refund request", "Delivery is late", "Password reset",
    "Order arrived damaged", "Change my address", "Billing error", "Account locked", "Feature request",
    "Printer not working", "Wrong item shipped", "Cancel my subscription", "Help with setup", "Question",
]
WORDS = ("order account invoice printer delivery refund password screen cable box parcel week today "
         "please thanks broken again still error help soon").split()


@dataclass
class PlannedMail:
    """One generated mail and the logical conversation it belongs to."""

    conversation: int
    kind: str  # new, forwarded, in_reply_to, reply_to_reply, references, reply_token, subject_token, stranger
    expected_rule: str
    render: Callable[[dict[int, int]], bytes]  # ticket id by logical conversation -> bytes


@dataclass
class Conversation:
    number: int
    sender: str
    subject: str
    message_ids: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)


def _text(rng: random.Random, words: int = 20) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + ".\n"


class Plan:
    """Waves of mail; a wave only refers to mail of earlier waves, so each wave can run concurrently."""

    def __init__(self, seed: int, tickets: int, replies: int) -> None:
        self.rng = random.Random(seed)
        self.conversations: list[Conversation] = []
        self.waves: list[list[PlannedMail]] = [[], [], []]
        self._ids = 0
        customers = [f"customer{n}@client{n % 97}.test" for n in range(tickets // 2)]
        for _ in range(tickets):
            self._new(self.waves[0], self.rng.choice(customers))
        first_level = replies * 2 // 3
        self._freeze()
        for _ in range(first_level):
            self._reply(self.waves[1], self.rng.choice(self.conversations[:tickets]))
        # Replies to replies: a parent from the first level of replies.
        replied = [c for c in self.conversations if len(c.message_ids) > 1]
        self._freeze()
        for _ in range(replies - first_level):
            self._reply(self.waves[2], self.rng.choice(replied), deep=True)

    def _freeze(self) -> None:
        """Replies refer only to mail of earlier waves, which is stored by the time they arrive."""
        self.frozen = {c.number: list(c.message_ids) for c in self.conversations}

    def _message_id(self, domain: str) -> str:
        self._ids += 1
        return f"{self._ids}.{self.rng.randrange(10**9)}@{domain}"

    def _new(self, wave: list[PlannedMail], sender: str, *, forwarded: bool = False, subject: str | None = None,
             in_reply_to: str | None = None) -> Conversation:
        conversation = Conversation(len(self.conversations), sender, subject or self.rng.choice(SUBJECTS))
        self.conversations.append(conversation)
        message_id = self._message_id(sender.split("@")[1])
        conversation.message_ids.append(message_id)
        conversation.participants.append(sender)
        cc = None
        if self.rng.random() < 0.2:
            cc = f"colleague{self.rng.randrange(500)}@{sender.split('@')[1]}"
            conversation.participants.append(cc)
        if forwarded or self.rng.random() < 0.05:
            body = (_text(self.rng, 5) + "\n---------- Forwarded message ---------\nFrom: someone@else.test\n"
                    f"Subject: {conversation.subject}\n\n" + _text(self.rng))
            subject_line, kind, rule = f"Fwd: {conversation.subject}", "forwarded", FORWARDED
        else:
            body, subject_line, kind, rule = _text(self.rng), conversation.subject, "new", NEW_TICKET
        raw = mail(sender=sender, subject=subject_line, body=body, message_id=message_id, cc=cc,
                   in_reply_to=in_reply_to)
        wave.append(PlannedMail(conversation.number, kind, rule, lambda tickets, raw=raw: raw))
        return conversation

    def _reply(self, wave: list[PlannedMail], conversation: Conversation, *, deep: bool = False) -> None:
        rng = self.rng
        roll = rng.random()
        sender = rng.choice(conversation.participants)
        quoted = "\n".join("> " + line for line in _text(rng).splitlines())
        body = _text(rng) + "\nOn Monday someone wrote:\n" + quoted + "\n"
        subject = f"Re: {conversation.subject}"
        message_id = self._message_id(sender.split("@")[1])
        thread = list(self.frozen[conversation.number])
        number = conversation.number
        if roll < 0.06:
            # Someone else writes about "the same thing": a new ticket, never a merge.
            stranger = f"stranger{rng.randrange(10**6)}@other.test"
            self._new(wave, stranger, subject=conversation.subject)
            return
        if roll < 0.10:
            # A stranger quoting someone else's ticket number is not trusted.
            stranger = f"stranger{rng.randrange(10**6)}@other.test"
            new = Conversation(len(self.conversations), stranger, conversation.subject, [message_id], [stranger])
            self.conversations.append(new)
            wave.append(PlannedMail(new.number, "stranger", NEW_TICKET, lambda tickets: mail(
                sender=stranger, subject=f"RE: [#{tickets[number]}] {conversation.subject}", body=body,
                message_id=message_id)))
            return
        if roll < 0.13:
            # A participant forwards the thread: a new ticket even though it quotes the old one.
            self._new(wave, sender, forwarded=True, subject=conversation.subject, in_reply_to=thread[-1])
            return
        conversation.message_ids.append(message_id)
        if roll < 0.55:
            parent = thread[-1] if deep else rng.choice(thread)
            kind = "reply_to_reply" if parent != thread[0] else "in_reply_to"
            raw = mail(sender=sender, subject=subject, body=body, message_id=message_id, in_reply_to=parent,
                       references=thread[: thread.index(parent) + 1])
            wave.append(PlannedMail(number, kind, IN_REPLY_TO, lambda tickets, raw=raw: raw))
        elif roll < 0.70:
            # A client that keeps References but drops In-Reply-To.
            raw = mail(sender=sender, subject=subject, body=body, message_id=message_id,
                       references=[*thread, f"lost.{message_id}"])
            wave.append(PlannedMail(number, "references", REFERENCES, lambda tickets, raw=raw: raw))
        elif roll < 0.85:
            # A reply to our agent's mail: its signed Message-ID names the ticket.
            def render(tickets: dict[int, int], sender=sender, body=body, message_id=message_id,
                       subject=subject, thread=thread) -> bytes:
                ours = make_message_id(SECRET, tickets[number], "acme.test")
                return mail(sender=sender, subject=subject, body=body, message_id=message_id, in_reply_to=ours,
                            references=[thread[0], ours])
            wave.append(PlannedMail(number, "reply_token", REPLY_TOKEN, render))
        else:
            # Outlook-style: no In-Reply-To / References, only the token, from a participant.
            wave.append(PlannedMail(number, "subject_token", SUBJECT_TOKEN, lambda tickets, sender=sender,
                                    body=body, message_id=message_id: mail(
                sender=sender, subject=f"RE: [#{tickets[number]}] {conversation.subject}", body=body,
                message_id=message_id)))


async def _ingest_wave(ctx: IngestContext, wave: list[PlannedMail], tickets: dict[int, int], workers: int):
    queue = list(enumerate(wave))
    results: dict[int, tuple] = {}

    async def worker() -> None:
        while queue:
            index, planned = queue.pop()
            outcome = await ingest_email(ctx, planned.render(tickets), smtp_envelope())
            results[index] = (planned, outcome)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return [results[i] for i in range(len(wave))]


@pytest.mark.slow
async def test_threading_at_scale_is_exact_with_no_false_merges(settings, sessions, blobs):
    ctx = IngestContext(settings=settings, sessions=sessions, blobs=blobs)
    # 1,750 first mails plus the tickets replies turn into (other senders,
    # forwards): 2,075 tickets and 2,025 replies.
    plan = Plan(seed=20261123, tickets=1750, replies=2350)
    # Several mails at once: on PostgreSQL whole transactions overlap; on
    # SQLite (one writer, see frontdesk.storage.writer) parsing and blob fsyncs do.
    workers = 6
    tickets: dict[int, int] = {}
    wrong: list[str] = []
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    total = 0
    for wave in plan.waves:
        for planned, outcome in await _ingest_wave(ctx, wave, tickets, workers):
            total += 1
            kinds[planned.kind] += 1
            if outcome.kind not in ("ticket_created", "threaded"):
                wrong.append(f"{planned.kind}: {outcome}")
                continue
            if outcome.reason != planned.expected_rule:
                wrong.append(f"{planned.kind}: rule {outcome.reason}, expected {planned.expected_rule}")
            expected = tickets.setdefault(planned.conversation, outcome.ticket_id)
            if outcome.ticket_id != expected:
                wrong.append(f"{planned.kind}: ticket {outcome.ticket_id}, expected {expected}")
    elapsed = time.monotonic() - started
    print(f"\n{settings.database_url.split(':')[0]}: {total} mails in {elapsed:.1f}s; {dict(kinds)}")

    assert wrong == []
    new = kinds["new"] + kinds["forwarded"] + kinds["stranger"]
    replies = total - new
    assert new >= 2000 and replies >= 2000
    assert min(kinds[k] for k in ("in_reply_to", "reply_to_reply", "references", "reply_token",
                                  "subject_token", "forwarded", "stranger")) > 50
    # No false merges: one ticket per logical conversation, and the rows agree.
    assert len(set(tickets.values())) == len(tickets) == len(plan.conversations)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == len(plan.conversations)
        assert await session.scalar(select(func.count()).select_from(Message)) == total
        per_ticket = dict((await session.execute(
            select(Message.ticket_id, func.count()).group_by(Message.ticket_id))).all())
    expected_per_ticket = Counter(tickets[p.conversation] for wave in plan.waves for p in wave)
    assert per_ticket == dict(expected_per_ticket)
