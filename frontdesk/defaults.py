"""What a fresh installation starts with: the Support pipeline, its automation, the default templates, the help desk.

Also seeds the channels table with the configured support addresses: the
table is the one source of truth for which addresses are ours (SMTP RCPT,
screening, routing) and which pipeline each feeds.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.model import (
    Channel,
    EmailTemplate,
    Inbox,
    Pipeline,
    PipelineAutomation,
    Status,
    StatusAction,
)
from frontdesk.model.automation import NOTIFY, SEND_EMAIL, TO_OWNER_TEAM
from frontdesk.model.channels import EMAIL
from frontdesk.model.inboxes import HELP_DESK
from frontdesk.settings import Settings

SUPPORT_PIPELINE = "support"
SUPPORT_STATUSES = (
    # (label, internal name, closed?)
    ("New", "new", False),
    ("Waiting on contact", "waiting_on_contact", False),
    ("Waiting on us", "waiting_on_us", False),
    ("Closed", "closed", True),
)

TICKET_RECEIVED = "ticket_received"
TICKET_CLOSED = "ticket_closed"

DEFAULT_TEMPLATES = {
    TICKET_RECEIVED: dict(
        name="Ticket received",
        subject="We received your request: {{ ticket.name }}",
        body_text=(
            "Hello {{ contact.first_name or 'there' }},\n\n"
            "Thank you for contacting us. Your request has been received and "
            "is ticket #{{ ticket.id }}. We will get back to you soon.\n\n"
            "{{ owner.name if owner else 'The support team' }}\n"
        ),
        body_html=(
            "<p>Hello {{ contact.first_name or 'there' }},</p>"
            "<p>Thank you for contacting us. Your request has been received and "
            "is ticket #{{ ticket.id }}. We will get back to you soon.</p>"
            "<p>{{ owner.name if owner else 'The support team' }}</p>"
        ),
    ),
    TICKET_CLOSED: dict(
        name="Ticket closed",
        subject="Your request is closed: {{ ticket.name }}",
        body_text=(
            "Hello {{ contact.first_name or 'there' }},\n\n"
            "Ticket #{{ ticket.id }} is now closed. If anything is still open, "
            "just reply to this email and we will pick it up again.\n\n"
            "{{ owner.name if owner else 'The support team' }}\n"
        ),
        body_html=(
            "<p>Hello {{ contact.first_name or 'there' }},</p>"
            "<p>Ticket #{{ ticket.id }} is now closed. If anything is still open, "
            "just reply to this email and we will pick it up again.</p>"
            "<p>{{ owner.name if owner else 'The support team' }}</p>"
        ),
    ),
}


async def _ensure_templates(session: AsyncSession) -> dict[str, EmailTemplate]:
    existing = {t.key: t for t in (await session.scalars(select(EmailTemplate))).all()}
    for key, fields in DEFAULT_TEMPLATES.items():
        if key not in existing:
            existing[key] = EmailTemplate(key=key, transactional=True, **fields)
            session.add(existing[key])
    await session.flush()
    return existing


async def _ensure_support_pipeline(session: AsyncSession, templates: dict[str, EmailTemplate]) -> Pipeline:
    pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == SUPPORT_PIPELINE))
    if pipeline is not None:
        return pipeline
    pipeline = Pipeline(name="Support", internal_name=SUPPORT_PIPELINE, position=0)
    session.add(pipeline)
    await session.flush()
    statuses = {}
    for position, (label, internal, closed) in enumerate(SUPPORT_STATUSES):
        statuses[internal] = Status(
            pipeline_id=pipeline.id, label=label, internal_name=internal, position=position, is_closed=closed
        )
        session.add(statuses[internal])
    await session.flush()
    session.add(
        PipelineAutomation(
            pipeline_id=pipeline.id,
            email_sent_status_id=statuses["waiting_on_contact"].id,
            customer_replied_status_id=statuses["waiting_on_us"].id,
        )
    )
    session.add_all(
        [
            StatusAction(status_id=statuses["new"].id, position=0, kind=SEND_EMAIL,
                         template_id=templates[TICKET_RECEIVED].id),
            StatusAction(status_id=statuses["closed"].id, position=0, kind=SEND_EMAIL,
                         template_id=templates[TICKET_CLOSED].id),
            StatusAction(status_id=statuses["closed"].id, position=1, kind=NOTIFY,
                         recipient_kind=TO_OWNER_TEAM),
        ]
    )
    await session.flush()
    return pipeline


async def _ensure_help_desk(session: AsyncSession) -> None:
    """The help desk inbox, where conversations and their tickets start."""
    if await session.scalar(select(Inbox.id).where(Inbox.kind == HELP_DESK)) is None:
        session.add(Inbox(key=HELP_DESK, name="Help desk", kind=HELP_DESK))


async def _seed_support_addresses(session: AsyncSession, settings: Settings) -> None:
    """One email channel per configured support address that has none yet.

    Only a seed: once the row exists, the table decides (an admin may have
    repointed, switched off or disabled it through the API), so a restart
    never undoes their change.
    """
    pipelines = {p.internal_name: p for p in (await session.scalars(select(Pipeline))).all()}
    existing = {key.lower() for key in (await session.scalars(select(Channel.key).where(Channel.kind == EMAIL))).all()}
    for entry in settings.support_addresses:
        pipeline = pipelines.get(entry.pipeline)
        if pipeline is None:  # a mistake in the settings stops start-up, seeded or not
            raise LookupError(f"support address {entry.address} names unknown pipeline {entry.pipeline!r}")
        if entry.address in existing:
            continue
        session.add(Channel(kind=EMAIL, key=entry.address, name=entry.address,
                            pipeline_id=pipeline.id, create_tickets=entry.create_tickets))
        existing.add(entry.address)


async def ensure_defaults(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Idempotently create the default pipeline, templates and help desk, and seed the configured support addresses."""
    async with sessions.begin() as session:
        templates = await _ensure_templates(session)
        await _ensure_support_pipeline(session, templates)
        await _ensure_help_desk(session)
        await _seed_support_addresses(session, settings)
