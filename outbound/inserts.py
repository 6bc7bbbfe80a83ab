"""Content inserted into an agent's reply: snippets and email templates, rendered for the ticket.

A reply names what it inserts, in order: ``[{"snippet": <id>}, {"template":
"<key>"}]``.  Each is rendered with the ticket's fields (the same sandbox
and context as automated mail) and appended to the reply's text, one blank
line apart; when the reply has HTML, the HTML gets the template's HTML
part (or the snippet's text, escaped).  What this returns is what is sent
and stored.  A snippet the agent may not see is as unknown as a missing one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.model import EmailTemplate, Ticket
from frontdesk.outbound.email.context import template_context
from frontdesk.outbound.email.render import TemplateRenderError, render_template, render_text
from frontdesk.tickets.access import Principal
from frontdesk.tickets.errors import DomainError, NotFound
from frontdesk.tickets.snippets import visible_snippet

MAX_INSERTS = 20
SNIPPET = "snippet"
TEMPLATE = "template"


@dataclass(frozen=True)
class Insert:
    kind: str  # SNIPPET or TEMPLATE
    ref: int | str  # a snippet id or a template key


@dataclass(frozen=True)
class InsertedPart:
    text: str
    html: str


def _as_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>\n")


def _invalid(index: int, message: str) -> DomainError:
    return DomainError("insert_invalid", f"insert[{index}]: {message}", field="insert", index=index)


def parse_inserts(value: Any) -> tuple[Insert, ...]:
    """The ``insert`` field of a reply: a list of ``{"snippet": id}`` / ``{"template": key}``."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_INSERTS:
        raise DomainError("insert_invalid", f"'insert' must be a list of at most {MAX_INSERTS} items", field="insert")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or len(item) != 1:
            raise _invalid(index, 'each item is {"snippet": <id>} or {"template": "<key>"}')
        kind, ref = next(iter(item.items()))
        if kind == SNIPPET and isinstance(ref, int) and not isinstance(ref, bool) and 0 < ref < 2**31:
            items.append(Insert(SNIPPET, ref))
        elif kind == TEMPLATE and isinstance(ref, str) and 0 < len(ref) <= 100:
            items.append(Insert(TEMPLATE, ref))
        else:
            raise _invalid(index, 'each item is {"snippet": <id>} or {"template": "<key>"}')
    return tuple(items)


async def render_inserts(session: AsyncSession, principal: Principal, ticket: Ticket,
                         inserts: tuple[Insert, ...]) -> list[InsertedPart]:
    if not inserts:
        return []
    context = await template_context(session, ticket)
    parts = []
    for index, insert in enumerate(inserts):
        try:
            if insert.kind == SNIPPET:
                try:
                    snippet = await visible_snippet(session, principal, int(insert.ref))
                except NotFound:
                    raise DomainError("insert_not_found", f"insert[{index}]: no snippet {insert.ref}",
                                      field="insert", index=index) from None
                text = render_text(snippet.body, context)
                parts.append(InsertedPart(text, _as_html(text)))
            else:
                template = await session.scalar(select(EmailTemplate).where(EmailTemplate.key == insert.ref))
                if template is None:
                    raise DomainError("insert_not_found", f"insert[{index}]: no template {insert.ref!r}",
                                      field="insert", index=index)
                rendered = render_template("", template.body_text, template.body_html or None, context)
                parts.append(InsertedPart(rendered.text, rendered.html or _as_html(rendered.text)))
        except TemplateRenderError as error:
            raise DomainError("template_render_error", f"insert[{index}]: {error}", field="insert",
                              index=index) from None
    return parts


def compose_reply(text: str | None, body_html: str | None, parts: list[InsertedPart]) -> tuple[str, str | None]:
    """The reply's text (and HTML, if it has one) with the inserted parts appended in order."""
    texts = [t for t in (text, *(p.text.strip("\n") for p in parts)) if t]
    htmls = [body_html, *(p.html for p in parts)] if body_html is not None else []
    return "\n\n".join(texts), ("\n".join(h for h in htmls if h) if body_html is not None else None)
