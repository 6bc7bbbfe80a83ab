"""Identify the contact behind an inbound message: find by address or channel identity, or create.

Email contacts are keyed by their lower-cased address
(:func:`frontdesk.tickets.contacts.find_or_create_by_email`); Messenger, chat
and form contacts by a :class:`ContactIdentity` (channel, external id),
linked to an email contact when the channel also gives an address.  Inserts
use "on conflict do nothing" and then read back, so two concurrent messages
from a new sender end with one contact, not an error.
"""

from __future__ import annotations

import functools
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Company, Contact, ContactIdentity
from frontdesk.ingest.message import InboundMessage
from frontdesk.storage.upsert import dialect_insert
from frontdesk.tickets.contacts import find_or_create_by_email, find_or_create_by_emails

NAME_LIMIT = 200


@functools.lru_cache(maxsize=4096)
def normalize_address(value: str | None) -> str | None:
    """The bare, lower-cased address in ``value``, or None if there is none.

    Cached: a batch asks about the same few addresses many times (sender,
    contact, To and Cc of every mail), and ``parseaddr`` is not cheap.
    """
    if not value:
        return None
    address = parseaddr(value)[1] or value
    address = address.strip().strip("<>").strip().lower()
    if "@" not in address or len(address) > 320 or any(c.isspace() for c in address):
        return None
    return address


def split_display_name(display: str | None) -> tuple[str | None, str | None]:
    """("Ada", "Lovelace") from "Ada Lovelace"; "Lovelace, Ada" is understood too."""
    if not display:
        return None, None
    display = " ".join(display.replace('"', " ").split())
    if not display or "@" in display:
        return None, None
    if "," in display:
        last, _, first = display.partition(",")
        return (first.strip()[:NAME_LIMIT] or None), (last.strip()[:NAME_LIMIT] or None)
    first, _, last = display.partition(" ")
    return first[:NAME_LIMIT] or None, (last.strip()[:NAME_LIMIT] or None)


async def _company_named(session: AsyncSession, name: str) -> int:
    name = name.strip()[:300]
    company_id = await session.scalar(select(Company.id).where(Company.name == name).order_by(Company.id).limit(1))
    if company_id is None:
        company = Company(name=name)
        session.add(company)
        await session.flush()
        company_id = company.id
    return company_id


def _field(fields: dict[str, Any], name: str, limit: int) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] or None


async def identify_email_sender(session: AsyncSession, message: InboundMessage) -> Contact | None:
    """The contact for an email's From address; None when the mail has no usable sender."""
    address = normalize_address(message.sender_address)
    if address is None:
        return None
    first, last = split_display_name(message.sender_name)
    return await find_or_create_by_email(session, address, first_name=first, last_name=last)


async def identify_email_senders(session: AsyncSession, messages: list[InboundMessage]
                                 ) -> tuple[dict[str, Contact], set[int]]:
    """:func:`identify_email_sender` for a batch of mail, set-based: the contacts by normalized address, and the new ones' ids.

    Mails are taken in arrival order, so a name only the second of two
    mails from a new address gives fills the contact as it would one mail
    at a time.
    """
    names: dict[str, tuple[str | None, str | None]] = {}
    for message in messages:
        address = normalize_address(message.sender_address)
        if address is not None:
            first, last = split_display_name(message.sender_name)
            known_first, known_last = names.get(address, (None, None))
            names[address] = (known_first or first, known_last or last)
    return await find_or_create_by_emails(session, names)


async def identify_channel_sender(session: AsyncSession, message: InboundMessage, channel_id: int) -> Contact | None:
    """The contact behind a Messenger / chat / form message.

    Looked up by (channel, external id) first, then by email; a new
    identity is linked to whichever contact that finds or creates.
    """
    fields = dict(message.contact_fields)
    email = normalize_address(_field(fields, "email", 320) or message.sender_address)
    first = _field(fields, "first_name", NAME_LIMIT)
    last = _field(fields, "last_name", NAME_LIMIT)
    if not first and not last:
        first, last = split_display_name(message.sender_name)
    phone = _field(fields, "phone", 64)
    company_name = _field(fields, "company", 300)
    company_id = await _company_named(session, company_name) if company_name else None

    external_id = (message.sender_external_id or "")[:255] or None
    contact: Contact | None = None
    if external_id is not None:
        contact = await session.scalar(
            select(Contact)
            .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.channel_id == channel_id, ContactIdentity.external_id == external_id)
        )
    if contact is None and email is not None:
        contact = await find_or_create_by_email(session, email, first_name=first, last_name=last,
                                                phone=phone, company_id=company_id)
    elif contact is not None:
        for attribute, value in (("first_name", first), ("last_name", last), ("phone", phone),
                                 ("company_id", company_id)):
            if value and not getattr(contact, attribute):
                setattr(contact, attribute, value)
    if contact is None:
        if external_id is None and not (first or last or phone):
            return None
        contact = Contact(first_name=first, last_name=last, phone=phone, company_id=company_id)
        session.add(contact)
        await session.flush()
    if external_id is not None:
        await session.execute(
            dialect_insert(session, ContactIdentity)
            .values(contact_id=contact.id, channel_id=channel_id, external_id=external_id)
            .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
        )
    return contact
