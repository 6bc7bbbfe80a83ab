"""Web form submissions: the configured field mapping -> ticket and contact properties.

The edge validates with :func:`map_submission` (pure) and
:func:`check_property_values` (custom properties, against their definitions)
before it stores anything: a 422 names every bad field.  The processor maps
the stored body again, with the same result, when it builds the inbound
message; ingest stores custom values typed, as the domain parses them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from frontdesk.channels.webhooks.config import FormChannel
from frontdesk.channels.webhooks.validation import PHONE, InvalidFields, decode_json, is_email
from frontdesk.ingest.message import InboundMessage
from frontdesk.tickets.errors import DomainError
from frontdesk.tickets.header_fields import header_text
from frontdesk.tickets.properties import BUILT_IN, all_properties
from frontdesk.tickets.property_values import typed_submitted_values

PRIORITIES = ("low", "medium", "high", "urgent")
LIMITS = {"ticket.name": 500, "ticket.category": 100, "contact.first_name": 200, "contact.last_name": 200,
          "contact.phone": 64, "contact.company": 300, "contact.email": 320}
# What reaches an outbound mail header (the subject, the recipient): one line, no control characters.
HEADER_TARGETS = ("ticket.name", "ticket.subject", "contact.email", "contact.first_name", "contact.last_name")
JSON_TYPES = ("application/json",)
URLENCODED = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class FormSubmission:
    ticket: dict[str, Any]  # name, description, priority, category, then custom properties by name
    contact: dict[str, Any]  # email, first_name, last_name, phone, company
    unmapped: dict[str, str] = field(default_factory=dict)  # fields the mapping does not name
    honeypot_filled: bool = False


def decode_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """JSON object or urlencoded body -> field values; ``ValueError`` when malformed."""
    if content_type in JSON_TYPES:
        data = decode_json(raw)
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        return data
    text = raw.decode("utf-8")
    # keep_blank_values: a blank required field must be reported as blank, not as absent.
    return {key: value for key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))}


def _value(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float, str)):
        text = str(raw).strip()
        return text or None
    raise TypeError


def map_submission(form: FormChannel, data: dict[str, Any]) -> FormSubmission:
    """Apply the mapping and validate; raise :class:`InvalidFields` naming every bad field."""
    errors: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for name, raw in data.items():
        try:
            values[name] = _value(raw)
        except TypeError:
            errors[name] = "must be a single value"
    honeypot = bool(form.honeypot_field and values.get(form.honeypot_field))
    for name in form.required:
        if not values.get(name) and name not in errors:
            errors[name] = "is required"
    ticket: dict[str, Any] = {}
    contact: dict[str, Any] = {}
    for name, target in form.fields.items():
        value = values.get(name)
        if value is None or name in errors:
            continue
        limit = LIMITS.get(target)
        if limit and len(value) > limit:
            errors[name] = f"must be at most {limit} characters"
            continue
        kind, _, prop = target.partition(".")
        if target in HEADER_TARGETS:
            try:
                header_text(value, name)
            except DomainError as error:
                errors[name] = error.message
                continue
        if target == "contact.email":
            if not is_email(value):
                errors[name] = "is not a valid email address"
                continue
            value = value.lower()
        elif target == "ticket.priority":
            if value.lower() not in PRIORITIES:
                errors[name] = f"must be one of {', '.join(PRIORITIES)}"
                continue
            value = value.lower()
        elif target == "contact.phone" and not PHONE.match(value):
            errors[name] = "is not a valid phone number"
            continue
        if kind == "ticket":
            # The pipeline puts names that are not ticket columns into custom properties.
            ticket[prop.removeprefix("custom.")] = value
        else:
            contact[prop] = value
    if "email" not in contact and not form.allow_without_email:
        email_field = form.field_for("contact.email") or "email"
        errors.setdefault(email_field, "is required (this form does not accept submissions without an email)")
    if errors and not honeypot:
        raise InvalidFields(errors)
    mapped = set(form.fields) | ({form.honeypot_field} if form.honeypot_field else set())
    unmapped = {k: v for k, v in values.items() if k not in mapped and v is not None}
    return FormSubmission(ticket=ticket, contact=contact, unmapped=unmapped, honeypot_filled=honeypot)


async def check_property_values(sessions: async_sessionmaker[AsyncSession], form: FormChannel,
                                submission: FormSubmission) -> None:
    """Custom property values as an API write would check them; :class:`InvalidFields` names each bad form field."""
    custom = {name: value for name, value in submission.ticket.items() if name not in BUILT_IN and name != "subject"}
    if not custom or submission.honeypot_filled:  # a bot is answered like success, never told what was wrong
        return
    async with sessions() as session:
        registry = await all_properties(session)
    errors: dict[str, str] = {}
    for name, value in custom.items():
        try:
            typed_submitted_values(registry, {name: value})
        except DomainError as error:
            field_name = form.field_for(f"ticket.custom.{name}") or form.field_for(f"ticket.{name}") or name
            errors[field_name] = error.message
    if errors:
        raise InvalidFields(errors)


def _describe(submission: FormSubmission, form: FormChannel, data: dict[str, Any]) -> str:
    """Without a mapped description, the agent still sees every submitted field."""
    lines = [f"{name}: {value}" for name, value in data.items()
             if name != form.honeypot_field and value not in (None, "")]
    return "\n".join(lines)


def to_inbound(form: FormChannel, submission: FormSubmission, data: dict[str, Any], *,
               raw_blob: str, raw: bytes) -> InboundMessage:
    digest = hashlib.sha256(raw).hexdigest()
    contact = submission.contact
    full_name = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p) or None
    description = submission.ticket.get("description") or _describe(submission, form, data)
    name = submission.ticket.get("name") or f"{form.name or form.slug} form submission"
    ticket_fields = {k: v for k, v in submission.ticket.items() if v not in (None, "")}
    ticket_fields.setdefault("name", name)
    ticket_fields.setdefault("description", description)
    return InboundMessage(
        channel="form",
        channel_key=form.slug,
        source=f"webhook:forms/{form.slug}",
        raw_blob=raw_blob,
        content_hash=digest,
        external_id=f"form:{form.slug}:{digest}",
        # Every submission is its own conversation.
        thread_key=f"form:{digest}",
        subject=name,
        sender_address=contact.get("email"),
        sender_name=full_name,
        text_body=description,
        reply_text=description,
        ticket_fields=ticket_fields,
        contact_fields=dict(contact),
        extra={"form": {"slug": form.slug, "unmapped": submission.unmapped}},
    )
