"""Contacts and companies: the rules for their values, finding or creating them, and searching them.

Every path that writes a contact (the contacts API, manual ticket create,
ingest) goes through here.  A contact's email is stored lower-cased
(:func:`normalized_email`), so the unique constraint on it is the
case-insensitive rule, and a new address is inserted with "on conflict do
nothing" and read back: two writers racing on one new address end with one
contact.  Email and names can head an outbound mail, so they obey
:mod:`frontdesk.tickets.header_fields`.
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import Company, Contact
from frontdesk.storage.upsert import dialect_insert
from frontdesk.tickets.errors import Conflict, DomainError
from frontdesk.tickets.header_fields import email_address, header_text

# Field -> (column attribute, longest value); the API's names.
CONTACT_FIELDS = {"email": ("email", 320), "first_name": ("first_name", 200), "last_name": ("last_name", 200),
                  "phone": ("phone", 64), "mobile_phone": ("mobile", 64)}
COMPANY_FIELDS = {"name": ("name", 300), "domain": ("domain", 255)}


def normalized_email(value: str, field: str = "email") -> str:
    """The bare address in ``value``, lower-cased: how every contact email is stored and compared."""
    return email_address(value, field).lower()


def _checked(values: Mapping[str, str | None], fields: Mapping[str, tuple[str, int]], prefix: str) -> dict[str, Any]:
    """Column values for ``values`` (API field names, strings or None), each within its length and on one line.

    Names head the To line of a reply; phone numbers, company names and
    domains have no business spanning lines either.  Emails are normalized,
    domains lower-cased.
    """
    checked: dict[str, Any] = {}
    for field, value in values.items():
        column, limit = fields[field]
        named = f"{prefix}{field}"
        if value is not None:
            if len(value) > limit:
                raise DomainError("field_too_long", f"'{named}' is longer than {limit} characters", field=named)
            value = normalized_email(value, named) if field == "email" else header_text(value, named)
            if field == "domain":
                value = value.lower()
        checked[column] = value
    return checked


async def _check_company(session: AsyncSession, company_id: int | None, field: str) -> None:
    if company_id is not None and await session.get(Company, company_id) is None:
        raise DomainError("unknown_company", f"no company {company_id}", field=field)


async def contact_with_email(session: AsyncSession, email: str) -> Contact | None:
    return await session.scalar(select(Contact).where(Contact.email == email))


async def create_contact(session: AsyncSession, values: Mapping[str, str | None], *,
                         company_id: int | None = None, prefix: str = "") -> Contact:
    """A new contact from API values; Conflict ``contact_email_taken`` (naming the contact) when the address is known.

    A contact needs an email or a name or a phone number: something to tell it by.
    """
    columns = _checked(values, CONTACT_FIELDS, prefix)
    if not any(columns.values()):
        raise DomainError("contact_empty", "a contact needs an email, a name or a phone number",
                          field=f"{prefix}email")
    await _check_company(session, company_id, f"{prefix}company_id")
    email = columns.get("email")
    if email is None:
        contact = Contact(**columns, company_id=company_id)
        session.add(contact)
        await session.flush()
        return contact
    # The unique constraint decides between two concurrent creations.
    contact = await session.scalar(
        dialect_insert(session, Contact).values(**columns, company_id=company_id, is_marketing_contact=False)
        .on_conflict_do_nothing(index_elements=["email"]).returning(Contact))
    if contact is None:
        existing = await contact_with_email(session, email)
        raise Conflict("contact_email_taken", f"a contact with email {email} exists",
                       field=f"{prefix}email", contact_id=existing.id if existing else None)
    return contact


async def update_contact(session: AsyncSession, contact: Contact, values: Mapping[str, str | None], *,
                         company_id: int | None = None, set_company: bool = False) -> dict[str, Any]:
    """Change ``contact``; the changes as ``{column: {"from", "to"}}``.  An address another contact has is a Conflict."""
    columns = _checked(values, CONTACT_FIELDS, "")
    if set_company:
        await _check_company(session, company_id, "company_id")
        columns["company_id"] = company_id
    email = columns.get("email")
    if email is not None and email != contact.email:
        other = await contact_with_email(session, email)
        if other is not None:
            raise Conflict("contact_email_taken", f"a contact with email {email} exists", field="email",
                           contact_id=other.id)
    changes = {c: {"from": getattr(contact, c), "to": v} for c, v in columns.items() if getattr(contact, c) != v}
    for column, change in changes.items():
        setattr(contact, column, change["to"])
    if "email" in changes:
        try:
            async with session.begin_nested():  # a racing writer's address: the unique constraint refuses it
                await session.flush()
        except IntegrityError:
            raise Conflict("contact_email_taken", f"a contact with email {email} exists", field="email") from None
    return changes


async def find_or_create_by_email(
    session: AsyncSession,
    address: str,
    *,
    first_name: str | None = None,
    last_name: str | None = None,
    phone: str | None = None,
    company_id: int | None = None,
) -> Contact:
    """The contact with this (already checked) address, created with the values given if new.

    Values only fill empty fields: a display name in one email must not
    overwrite what an agent typed.  Without a company, a new contact joins
    the company whose domain is the address's, when one is on file (we
    never invent companies from mail).
    """
    address = address.lower()
    contact = await contact_with_email(session, address)
    if contact is None:
        if company_id is None:
            domain = address.rpartition("@")[2]
            company_id = (select(Company.id).where(Company.domain == domain)  # type: ignore[assignment]
                          .order_by(Company.id).limit(1).scalar_subquery())
        contact = await session.scalar(
            dialect_insert(session, Contact)
            .values(email=address, first_name=first_name, last_name=last_name, phone=phone,
                    company_id=company_id, is_marketing_contact=False)
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(Contact)
        )
        if contact is None:  # a concurrent writer created it first: theirs is the one
            contact = await contact_with_email(session, address)
            assert contact is not None
        return contact
    _fill_empty(contact, first_name=first_name, last_name=last_name, phone=phone, company_id=company_id)
    return contact


def _fill_empty(contact: Contact, **values: Any) -> None:
    """Values only fill empty fields: a display name in one email must not overwrite what an agent typed."""
    for attribute, value in values.items():
        if value and not getattr(contact, attribute):
            setattr(contact, attribute, value)


async def find_or_create_by_emails(session: AsyncSession, names: Mapping[str, tuple[str | None, str | None]]
                                   ) -> tuple[dict[str, Contact], set[int]]:
    """:func:`find_or_create_by_email` for many (already checked, lower-cased) addresses at once.

    The contacts by address, and the ids of those this call created.

    ``names`` maps each address to its (first, last) name.  One read, one
    insert of the new addresses (with "on conflict do nothing", in address
    order), and one more read only for addresses a concurrent writer
    created in between.  The same rules as for one: names fill empty
    fields only, and a new contact joins the company of its domain.
    """
    addresses = sorted(names)
    if not addresses:
        return {}, set()
    found = {c.email: c for c in (await session.scalars(select(Contact).where(Contact.email.in_(addresses)))).all()}
    new = [address for address in addresses if address not in found]
    created: dict[str, Contact] = {}
    if new:
        domains = {address.rpartition("@")[2] for address in new}
        companies: dict[str, int] = {}
        for company_id, domain in await session.execute(
                select(Company.id, Company.domain).where(Company.domain.in_(domains)).order_by(Company.id)):
            companies.setdefault(domain, company_id)
        rows = [dict(email=address, first_name=names[address][0], last_name=names[address][1], phone=None,
                     company_id=companies.get(address.rpartition("@")[2]), is_marketing_contact=False)
                for address in new]
        inserted = await session.scalars(
            dialect_insert(session, Contact).values(rows).on_conflict_do_nothing(index_elements=["email"])
            .returning(Contact))
        created = {c.email: c for c in inserted.all()}
        found.update(created)
        lost = [address for address in new if address not in found]
        if lost:  # concurrent writers created these first: theirs are the ones
            found.update({c.email: c for c in (await session.scalars(
                select(Contact).where(Contact.email.in_(lost)))).all()})
    for address, (first, last) in names.items():
        _fill_empty(found[address], first_name=first, last_name=last)
    return found, {c.id for c in created.values()}


async def create_company(session: AsyncSession, values: Mapping[str, str | None], *, prefix: str = "") -> Company:
    columns = _checked(values, COMPANY_FIELDS, prefix)
    if not columns.get("name"):
        raise DomainError("field_required", f"'{prefix}name' is required", field=f"{prefix}name")
    company = Company(**columns)
    session.add(company)
    await session.flush()
    return company


def update_company(company: Company, values: Mapping[str, str | None]) -> dict[str, Any]:
    columns = _checked(values, COMPANY_FIELDS, "")
    if "name" in columns and not columns["name"]:
        raise DomainError("field_invalid", "'name' cannot be empty", field="name")
    changes = {c: {"from": getattr(company, c), "to": v} for c, v in columns.items() if getattr(company, c) != v}
    for column, change in changes.items():
        setattr(company, column, change["to"])
    return changes


def contact_search(text: str) -> ColumnElement[bool]:
    """Contacts whose email, names (alone or together) or phone numbers contain ``text``, in any case."""
    full_name = func.coalesce(Contact.first_name, "") + " " + func.coalesce(Contact.last_name, "")
    return or_(*(column.icontains(text, autoescape=True)
                 for column in (Contact.email, full_name, Contact.phone, Contact.mobile)))


def company_search(text: str) -> ColumnElement[bool]:
    """Companies whose name or domain contains ``text``, in any case."""
    return or_(Company.name.icontains(text, autoescape=True), Company.domain.icontains(text, autoescape=True))
