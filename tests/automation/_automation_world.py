"""Test helpers for the automation tests: tickets as ingest leaves them, teams, status ids."""

from __future__ import annotations

from sqlalchemy import select, update

from frontdesk.model import (Contact, Conversation, EmailTemplate, Message, Pipeline, Status, Team, TeamMembership,
                             Ticket, User)


async def status_ids(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        pipeline = await session.scalar(select(Pipeline).where(Pipeline.internal_name == "support"))
        rows = (await session.scalars(select(Status).where(Status.pipeline_id == pipeline.id))).all()
        return {s.internal_name: s.id for s in rows}


async def make_team(sessions, name: str, members: list[tuple[str, str]]) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    """A team and its members (name, email); each member's primary team is this one."""
    async with sessions.begin() as session:
        team = Team(name=name)
        session.add(team)
        await session.flush()
        ids = []
        for user_name, address in members:
            user = User(name=user_name, email=address, primary_team_id=team.id)
            session.add(user)
            await session.flush()
            session.add(TeamMembership(user_id=user.id, team_id=team.id))
            ids.append(user.id)
        return team.id, ids


async def make_ticket(sessions, *, source_channel: str = "email", contact_email: str | None = "ada@example.com",  # type: ignore[no-untyped-def]
                      marketing: bool = False, owner_id: int | None = None, status: str = "new",
                      subject: str = "The printer is on fire", message_id: str = "m1@example.com") -> int:
    """A ticket as ingest leaves it: contact, origin conversation, the customer's first message."""
    statuses = await status_ids(sessions)
    async with sessions.begin() as session:
        contact = await session.scalar(select(Contact).where(Contact.email == contact_email)) if contact_email else None
        if contact is None:
            contact = Contact(email=contact_email, first_name="Ada", is_marketing_contact=marketing)
            session.add(contact)
            await session.flush()
        pipeline_id = await session.scalar(select(Status.pipeline_id).where(Status.id == statuses[status]))
        ticket = Ticket(name=subject, pipeline_id=pipeline_id, status_id=statuses[status],
                        source_channel=source_channel, contact_id=contact.id, owner_id=owner_id)
        session.add(ticket)
        await session.flush()
        conversation = Conversation(ticket_id=ticket.id, channel=source_channel, thread_key=message_id,
                                    contact_id=contact.id)
        session.add(conversation)
        await session.flush()
        ticket.origin_conversation_id = conversation.id
        session.add(Message(conversation_id=conversation.id, ticket_id=ticket.id, direction="inbound",
                            channel=source_channel, external_id=message_id, subject=subject,
                            from_address=contact_email, references=["older@example.com"]))
        return ticket.id


async def break_template(sessions, key: str) -> None:  # type: ignore[no-untyped-def]
    """Make the template ``key`` fail to render: every event that sends it fails."""
    async with sessions.begin() as session:
        await session.execute(update(EmailTemplate).where(EmailTemplate.key == key).values(subject="{{ broken"))
