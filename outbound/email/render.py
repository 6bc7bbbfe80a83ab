"""Render an email template (subject, text and HTML) in a Jinja2 sandbox.

Templates are edited by admins in ``email_templates``; the sandbox keeps
them from reaching Python internals, and the HTML part is autoescaped so a
customer's name or subject cannot inject markup.  The context is plain
dictionaries (ticket, contact, owner), never ORM objects.  Admin writes
check a template's syntax here first (:func:`check_template_syntax`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

from jinja2 import Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from frontdesk.outbound.email.compose import flatten_header
from frontdesk.tickets.errors import DomainError

_TEXT = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
_HTML = SandboxedEnvironment(autoescape=True, keep_trailing_newline=True)


@functools.lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    # Compiling costs more than rendering (a Ticket received per new ticket
    # compiled the same three sources each time); a compiled template is
    # immutable, and an edited template is a new source, so caching by text is safe.
    return (_HTML if html else _TEXT).from_string(source)


def check_template_syntax(field: str, source: str) -> None:
    """``template_syntax_error`` naming the field and line, unless ``source`` parses."""
    try:
        _TEXT.parse(source)
    except TemplateSyntaxError as error:
        raise DomainError("template_syntax_error", f"{field}: {error.message} (line {error.lineno})",
                          field=field, line=error.lineno) from None


class TemplateRenderError(ValueError):
    """A template does not render: fix it in the admin API, then replay the event."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str  # one line, flattened
    text: str
    html: str | None


def ticket_fields(ticket: Any, status_label: str | None = None) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "name": ticket.name,
        "description": ticket.description,
        "priority": ticket.priority,
        "category": ticket.category,
        "status": status_label,
        "source": ticket.source_channel,
        "properties": dict(ticket.custom_properties or {}),
    }


def contact_fields(contact: Any | None) -> dict[str, Any]:
    if contact is None:
        return {"first_name": None, "last_name": None, "email": None, "name": None}
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p) or None
    return {"first_name": contact.first_name, "last_name": contact.last_name,
            "email": contact.email, "name": name}


def owner_fields(owner: Any | None) -> dict[str, Any] | None:
    return None if owner is None else {"name": owner.name, "email": owner.email}


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Plain text with template fields (a snippet), rendered in the sandbox."""
    try:
        return _compiled(source, False).render(context)
    except TemplateError as error:
        raise TemplateRenderError(f"template does not render: {error}") from error


def render_template(subject: str, body_text: str, body_html: str | None,
                    context: Mapping[str, Any]) -> RenderedEmail:
    try:
        rendered_subject = flatten_header(_compiled(subject, False).render(context))
        text = _compiled(body_text, False).render(context)
        html = _compiled(body_html, True).render(context) if body_html else None
    except TemplateError as error:
        raise TemplateRenderError(f"template does not render: {error}") from error
    return RenderedEmail(subject=rendered_subject, text=text, html=html)
