"""Apply domain events' automation: load state, decide (pure), apply in one transaction.

One event (:func:`handle_event`) or a batch of them (:func:`handle_events`,
what both runners try first) is applied in one transaction: its tickets
locked at once, its applied keys read in one query, then each event in
order through the same pure decisions.

Every effect (a status change, an email, a notification) is guarded by an
``AppliedEffect`` key, ``<event id>:<effect>``, inserted in the same
transaction as the effect itself.  A replayed or redelivered event finds
its keys and changes nothing; two handlers racing on the same event collide
on the unique key, and the loser reruns and finds them.  Follow-up events
(``event.follow_up(...)``, actor automation, one step deeper) go to the outbox
in that same transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Sequence

import structlog
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.automation.actions import (
    ActionConfig,
    ActionWorld,
    Notify,
    Person,
    SendTemplate,
    SkipAction,
    entered_status,
    plan_notifications,
    plan_status_actions,
)
from frontdesk.automation.batch_reads import BatchReads
from frontdesk.automation.batch_writes import BatchWrites
from frontdesk.automation.effects import EffectLedger
from frontdesk.automation.loop_guard import RATE_LIMITED, admit
from frontdesk.automation.mentions import notify_mentions
from frontdesk.automation.services import AutomationServices
from frontdesk.automation.triggers import NoChange, TicketState, TriggerSettings, status_trigger
from frontdesk.events import (
    AUTOMATION,
    Actor,
    CommentCreated,
    CommentEdited,
    DomainEvent,
    MessageReceived,
    MessageSent,
    SlaDueSoon,
    SlaTimerFired,
    TicketCreated,
    TicketStatusChanged,
)
from frontdesk.model import (
    Contact,
    Conversation,
    EmailTemplate,
    PipelineAutomation,
    Status,
    StatusAction,
    TeamMembership,
    Ticket,
    User,
)
from frontdesk.model.automation import NOTIFY, TO_TEAM, TO_USER
from frontdesk.model.channels import EMAIL
from frontdesk.storage.writer import write_transaction
from frontdesk.tickets.sla.store import load_settings
from frontdesk.tickets.sla.tracking import TRACKED_EVENTS, track_event
from frontdesk.tickets.spam import automation_skips
from frontdesk.tickets.status import move_status
from frontdesk.outbound.email.outgoing import prepare_ticket_email, queue_internal_email
from frontdesk.outbound.email.render import contact_fields, owner_fields, render_template, ticket_fields

log = structlog.get_logger(__name__)

LOOP_GUARD_STOPS = Counter("frontdesk_automation_loop_guard_stops_total",
                           "Events automation refused to act on", ["reason"])

ATTEMPTS_ON_CONFLICT = 5
# SQLite has one writer for all processes: a daemon that waits longer than its
# busy timeout (10 s) for a worker's batch counts that as an outage, so there
# a batch commits every few events.
SQLITE_TRANSACTION_SIZE = 25


def _sqlite_busy(error: OperationalError) -> bool:
    return "database is locked" in str(error)


async def handle_event(services: AutomationServices, event: DomainEvent) -> None:
    """Apply the automation ``event`` calls for, exactly once, then move its ticket's SLA clocks."""
    for attempt in range(1, ATTEMPTS_ON_CONFLICT + 1):
        try:
            queued = await _apply_in_one_transaction(services, [event])
        except (IntegrityError, OperationalError) as error:
            # A concurrent handler of the same event won the race (unique
            # effect key), or SQLite refused a second writer: rerun, and
            # the rerun sees what the winner committed.
            if isinstance(error, OperationalError) and not _sqlite_busy(error):
                raise
            if attempt == ATTEMPTS_ON_CONFLICT:
                raise
            log.info("automation_conflict_rerun", event_id=event.id, attempt=attempt, error=type(error).__name__)
            await asyncio.sleep(0.05 * attempt)
        else:
            _wake_outbound(services, queued)
            return


async def handle_events(services: AutomationServices, events: Sequence[DomainEvent]) -> None:
    """Apply a batch of events, in order, in one transaction (on SQLite: a few, in order).

    The runners call this first and, when it raises, apply the batch's
    events one by one (:func:`handle_event`, with retries and dead letters),
    so one poison event costs its batch a second pass, never the others'
    effects.  The decisions and the effect keys are the same as one by one.
    """
    queued = False
    size = SQLITE_TRANSACTION_SIZE if _on_sqlite(services) else max(len(events), 1)
    for start in range(0, len(events), size):
        # When a later slice fails, the runner's one-by-one pass finds the
        # committed slices' effect keys and skips them: still exactly once.
        queued = await _apply_in_one_transaction(services, events[start:start + size]) or queued
    _wake_outbound(services, queued)


def _on_sqlite(services: AutomationServices) -> bool:
    engine = services.sessions.kw.get("bind")
    return engine is not None and engine.dialect.name == "sqlite"


@dataclass(frozen=True)
class AutomationHandler:
    """:func:`handle_event` bound to its services, with :meth:`apply_batch` for runners that batch."""

    services: AutomationServices

    async def __call__(self, event: DomainEvent) -> None:
        await handle_event(self.services, event)

    async def apply_batch(self, events: Sequence[DomainEvent]) -> None:
        await handle_events(self.services, events)


def _wake_outbound(services: AutomationServices, queued: bool) -> None:
    if queued and services.outbound is not None:
        services.outbound.wake()


async def _apply_in_one_transaction(services: AutomationServices, events: Sequence[DomainEvent]) -> bool:
    """Apply ``events`` in one transaction; whether any mail was queued."""
    # On SQLite, in the daemon's process, take turns with ingest's writers.
    async with write_transaction(services.sessions) as session:
        # The tickets first, all at once and in id order, so two workers (or
        # a worker and an agent) lock them in the same order; and every
        # applied key of the batch in one query.
        tickets = await _lock_tickets(session, {e.ticket_id for e in events if e.ticket_id is not None})
        ledger = await EffectLedger.load(session, (e.id for e in events))
        reads = await BatchReads.load(session, events, tickets)
        writes = BatchWrites()
        queued = False
        for event in events:
            queued = await _apply_event(services, session, ledger, reads, writes, event) or queued
        await writes.write(session, services.blobs, ledger)
        return queued


async def _apply_event(services: AutomationServices, session: AsyncSession, ledger: EffectLedger,
                       reads: BatchReads, writes: BatchWrites, event: DomainEvent) -> bool:
    """One event's automation inside the caller's transaction; whether it queued mail."""
    if event.ticket_id is None:
        return False
    queued = False
    admission = admit(event)
    if not admission.allowed:
        LOOP_GUARD_STOPS.labels(admission.reason).inc()
        log.info("automation_loop_guard", event_id=event.id, type=event.type, ticket_id=event.ticket_id,
                 depth=event.depth, causation_id=event.causation_id, reason=admission.reason)
    elif isinstance(event, (MessageSent, MessageReceived)):
        queued = await _apply_status_trigger(session, ledger, writes, event)
    elif isinstance(event, (TicketCreated, TicketStatusChanged)):
        queued = await _apply_status_actions(services, session, ledger, reads, writes, event)
    elif isinstance(event, (CommentCreated, CommentEdited)):
        queued = await notify_mentions(services, session, ledger, event)
    elif isinstance(event, SlaTimerFired):
        queued = await _apply_sla_notifications(services, session, ledger, event)
    # The clocks follow every event, also those automation refuses to act on,
    # and after the trigger so a new clock sees the status the trigger set.
    if isinstance(event, TRACKED_EVENTS):
        await _apply_sla_clocks(services, session, ledger, event)
    return queued


async def _apply_sla_clocks(services: AutomationServices, session: AsyncSession, ledger: EffectLedger,
                            event: DomainEvent) -> bool:
    key = f"{event.id}:sla-clocks"
    if ledger.applied(key):
        return False
    if await track_event(session, event):
        ledger.record(key, "sla_clocks", event.ticket_id or 0)
    return False


async def _lock_tickets(session: AsyncSession, ticket_ids: set[int]) -> list[Ticket]:
    # FOR UPDATE on PostgreSQL serializes with agents changing the same
    # tickets; SQLite ignores it and serializes writers anyway.  The rows stay
    # in the session, so each event's ticket below is read from there.
    if not ticket_ids:
        return []
    return list((await session.scalars(select(Ticket).where(Ticket.id.in_(sorted(ticket_ids))).order_by(Ticket.id)
                                       .with_for_update())).all())


async def _locked_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket to automate (locked by :func:`_lock_tickets`); None when it is gone or marked spam.

    A deleted ticket is left alone: no status moves, no mail about it; spam is never automated.
    """
    ticket = await session.get(Ticket, ticket_id)
    if ticket is not None and ticket.deleted_at is not None:
        return None
    if ticket is not None and automation_skips(ticket):
        log.info("automation_skipped_spam", ticket_id=ticket_id)
        return None
    return ticket


async def _pipeline_statuses(session: AsyncSession, pipeline_id: int) -> dict[int, Status]:
    # Read once per transaction: a batch's events mostly share a pipeline.
    # The session (one per transaction here) is where such reads are kept.
    cache = session.info.setdefault("automation_statuses", {})
    if pipeline_id not in cache:
        cache[pipeline_id] = {s.id: s for s in (await session.scalars(
            select(Status).where(Status.pipeline_id == pipeline_id))).all()}
    return cache[pipeline_id]


async def _status_chain(session: AsyncSession, status_id: int) -> list[StatusAction]:
    cache = session.info.setdefault("automation_chains", {})
    if status_id not in cache:
        cache[status_id] = list((await session.scalars(
            select(StatusAction).where(StatusAction.status_id == status_id)
            .order_by(StatusAction.position, StatusAction.id))).all())
    return cache[status_id]


async def _templates(session: AsyncSession, ids: set[int]) -> list[EmailTemplate]:
    """The chain's templates, read once per transaction (a batch's new tickets share them)."""
    cache: dict[int, EmailTemplate | None] = session.info.setdefault("automation_templates", {})
    if missing := sorted(ids - cache.keys()):
        found = {t.id: t for t in (await session.scalars(
            select(EmailTemplate).where(EmailTemplate.id.in_(missing)))).all()}
        cache.update({i: found.get(i) for i in missing})
    return [t for i in sorted(ids) if (t := cache[i]) is not None]


async def _ticket_state(session: AsyncSession, ticket: Ticket) -> tuple[TicketState, dict[int, Status]]:
    statuses = await _pipeline_statuses(session, ticket.pipeline_id)
    state = TicketState(
        id=ticket.id, pipeline_id=ticket.pipeline_id, status_id=ticket.status_id,
        source_channel=ticket.source_channel, reopened=ticket.reopened_at is not None,
        pipeline_status_ids=frozenset(statuses),
    )
    return state, statuses


async def _apply_status_trigger(session: AsyncSession, ledger: EffectLedger, writes: BatchWrites,
                                event: DomainEvent) -> bool:
    key = f"{event.id}:status-trigger"
    if ledger.applied(key):
        return False
    ticket = await _locked_ticket(session, event.ticket_id or 0)
    if ticket is None:
        return False
    automation = await session.get(PipelineAutomation, ticket.pipeline_id)
    config = None if automation is None else TriggerSettings(
        automation.email_sent_enabled, automation.email_sent_status_id,
        automation.customer_replied_enabled, automation.customer_replied_status_id)
    state, statuses = await _ticket_state(session, ticket)
    thread_forwarded = False
    if isinstance(event, MessageReceived) and event.conversation_id is not None:
        conversation = await session.get(Conversation, event.conversation_id)
        thread_forwarded = bool(conversation and conversation.is_forwarded)
    decision = status_trigger(event, config, state, thread_forwarded=thread_forwarded)
    if isinstance(decision, NoChange):
        log.debug("status_trigger_no_change", event_id=event.id, ticket_id=ticket.id, reason=decision.reason)
        return False
    moved = move_status(ticket, statuses[ticket.status_id], statuses[decision.status_id],
                        actor=Actor(AUTOMATION), rule=decision.rule, cause=event)
    ledger.record(key, "status_change", ticket.id)
    writes.event(moved)
    log.info("status_trigger_applied", event_id=event.id, ticket_id=ticket.id, rule=decision.rule,
             to_status=moved.to_status)
    return False


async def _apply_sla_notifications(services: AutomationServices, session: AsyncSession, ledger: EffectLedger,
                                   event: DomainEvent) -> bool:
    """The internal emails an SLA moment sends: to the owner, the owner's team, as the SLA settings say."""
    assert isinstance(event, SlaTimerFired)
    moment = "due_soon" if isinstance(event, SlaDueSoon) else "overdue"
    ticket = await session.get(Ticket, event.ticket_id or 0)
    if ticket is None:
        return False
    kinds = (await load_settings(session)).document["notify"][moment]
    keys = {kind: f"{event.id}:sla-notify:{kind}" for kind in kinds}
    configs = [ActionConfig(index, NOTIFY, recipient_kind=kind) for index, kind in enumerate(kinds)
               if not ledger.applied(keys[kind])]
    if not configs:
        return False
    world, contact, _ = await _action_world(session, ticket, None, [])
    queued = False
    for config, decision in zip(configs, plan_notifications(configs, world)):
        key = keys[config.recipient_kind or ""]
        if isinstance(decision, Notify):
            for person in decision.recipients:
                await queue_internal_email(
                    session, services.blobs, services.settings, ticket=ticket, to=person.email,
                    subject=f"Ticket {moment.replace('_', ' ')}: {ticket.name}",
                    text=_sla_notification_text(ticket, event, moment, person), idempotency_key=f"{key}:user:{person.user_id}")
                queued = True
        else:
            log.info("sla_notification_skipped", event_id=event.id, ticket_id=ticket.id,
                     recipient=config.recipient_kind, reason=getattr(decision, "reason", None))
        ledger.record(key, "sla_notify", ticket.id)
    return queued


def _sla_notification_text(ticket: Ticket, event: SlaTimerFired, moment: str, person: Person) -> str:
    when = "is due soon" if moment == "due_soon" else "is overdue"
    return (
        f"Hello {person.name},\n\n"
        f"The {event.clock.replace('_', ' ')} of ticket #{ticket.id} \"{ticket.name}\" {when} (due {event.due_at}).\n"
        f"Priority: {ticket.priority or '-'}\n"
    )


def _people(users: list[User]) -> dict[int, Person]:
    return {u.id: Person(u.id, u.name, u.email) for u in sorted(users, key=lambda u: u.id) if u.is_active}


async def _team_members(session: AsyncSession, team_ids: set[int]) -> dict[int, tuple[Person, ...]]:
    """Active members of each team: explicit memberships plus users whose primary team it is."""
    members: dict[int, dict[int, User]] = {t: {} for t in team_ids}
    if team_ids:
        rows = (await session.execute(
            select(TeamMembership.team_id, User).join(User, User.id == TeamMembership.user_id)
            .where(TeamMembership.team_id.in_(team_ids)))).all()
        for team_id, user in rows:
            members[team_id][user.id] = user
        for user in (await session.scalars(select(User).where(User.primary_team_id.in_(team_ids)))).all():
            members[user.primary_team_id or -1][user.id] = user
    return {team_id: tuple(_people(list(users.values())).values()) for team_id, users in members.items()}


async def _action_world(session: AsyncSession, ticket: Ticket, automation: PipelineAutomation | None,
                        chain: list[StatusAction]) -> tuple[ActionWorld, Contact | None, User | None]:
    contact = await session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    templates = {t.id: t.transactional for t in await _templates(
        session, {a.template_id for a in chain if a.template_id is not None})}
    owner = await session.get(User, ticket.owner_id) if ticket.owner_id else None
    # The owner's team is their primary team; an owner without one falls back to the ticket's team.
    owner_team_id = (owner.primary_team_id or ticket.team_id) if owner else None
    team_ids = {a.recipient_id for a in chain if a.recipient_kind == TO_TEAM and a.recipient_id is not None}
    if owner_team_id is not None:
        team_ids.add(owner_team_id)
    user_ids = {a.recipient_id for a in chain if a.recipient_kind == TO_USER and a.recipient_id is not None}
    named = list((await session.scalars(select(User).where(User.id.in_(user_ids)))).all()) if user_ids else []
    world = ActionWorld(
        source_channel=ticket.source_channel,
        action_sources=frozenset(automation.action_sources or []) if automation else frozenset(),
        contact_email=contact.email if contact else None,
        contact_is_marketing=bool(contact and contact.is_marketing_contact),
        template_transactional=templates,
        users=_people([*named, *([owner] if owner else [])]),
        team_members=await _team_members(session, team_ids),
        owner_id=ticket.owner_id,
        owner_team_id=owner_team_id,
    )
    return world, contact, owner


async def _apply_status_actions(services: AutomationServices, session: AsyncSession, ledger: EffectLedger,
                                reads: BatchReads, writes: BatchWrites, event: DomainEvent) -> bool:
    ticket = await _locked_ticket(session, event.ticket_id or 0)
    if ticket is None:
        return False
    status_id = entered_status(event, ticket.status_id)
    status = await session.get(Status, status_id) if status_id is not None else None
    if status is None:
        return False
    chain = await _status_chain(session, status.id)
    if not chain:
        return False
    keys = {a.id: f"{event.id}:action:{a.id}" for a in chain}
    pending = [a for a in chain if not ledger.applied(keys[a.id])]
    if not pending:
        return False
    automation = await session.get(PipelineAutomation, ticket.pipeline_id)
    world, contact, owner = await _action_world(session, ticket, automation, pending)
    decisions = plan_status_actions(
        [ActionConfig(a.id, a.kind, a.template_id, a.recipient_kind, a.recipient_id) for a in pending], world)
    context = {"ticket": ticket_fields(ticket, status.label), "contact": contact_fields(contact),
               "owner": owner_fields(owner)}
    queued = False
    for decision in decisions:
        key = keys[decision.action_id]
        if isinstance(decision, SkipAction):
            log.info("status_action_skipped", event_id=event.id, ticket_id=ticket.id,
                     action_id=decision.action_id, reason=decision.reason)
            continue
        if isinstance(decision, SendTemplate) and not await reads.may_send_automated(session, decision.to):
            LOOP_GUARD_STOPS.labels(RATE_LIMITED).inc()
            log.warning("automation_loop_guard", event_id=event.id, ticket_id=ticket.id, reason=RATE_LIMITED,
                        action_id=decision.action_id)
            continue
        if isinstance(decision, SendTemplate):
            template = await session.get(EmailTemplate, decision.template_id)
            assert template is not None  # planned from the same transaction's read
            rendered = render_template(template.subject, template.body_text, template.body_html, context)
            email = await prepare_ticket_email(
                session, services.settings, ticket=ticket, to=decision.to,
                subject=rendered.subject, text=rendered.text, html=rendered.html, idempotency_key=key,
                kind="template", author_kind="automation", automated=True, thread=reads.threads.get(ticket.id),
            )
            writes.email(ticket.id, email, _email_sent(event, email.message["conversation_id"], template.key,
                                                       decision.action_id))
            reads.sent_automated(decision.to)
            ledger.record(key, "send_email", ticket.id)
        elif isinstance(decision, Notify):
            for person in decision.recipients:
                await queue_internal_email(
                    session, services.blobs, services.settings, ticket=ticket, to=person.email,
                    subject=f"Ticket {status.label.lower()}: {ticket.name}",
                    text=_notification_text(ticket, status, contact, person),
                    idempotency_key=f"{key}:user:{person.user_id}",
                )
            ledger.record(key, "notify", ticket.id)
        queued = True
        log.info("status_action_applied", event_id=event.id, ticket_id=ticket.id,
                 action_id=decision.action_id, kind=type(decision).__name__)
    return queued


def _email_sent(cause: DomainEvent, conversation_id: int | None, template: str,
                action_id: int) -> Callable[[int], MessageSent]:
    """The ``message.sent`` of a template email, once its message has an id."""
    def build(message_id: int) -> MessageSent:
        return cause.follow_up(MessageSent, message_id=message_id, conversation_id=conversation_id, channel=EMAIL,
                               from_ticket=False, automated=True, template=template, action_id=action_id)
    return build


def _notification_text(ticket: Ticket, status: Status, contact: Contact | None, person: Person) -> str:
    who = contact_fields(contact)
    requester = who["name"] or who["email"] or "unknown contact"
    return (
        f"Hello {person.name},\n\n"
        f"Ticket #{ticket.id} \"{ticket.name}\" entered the status {status.label}.\n"
        f"Contact: {requester}\n"
        f"Priority: {ticket.priority or '-'}\n"
    )
