"""Status triggers: which status a ticket moves to when email is sent or a customer replies.

Reference semantics (HubSpot's "ticket status automation"), per pipeline,
each trigger with its own switch and target status:

* **An email is sent to a customer**: an agent sent email from the ticket.
  Mail sent from the contact record (``from_ticket`` false) and automated
  mail do not count.
* **A customer replies to an email**: the customer wrote on the thread the
  ticket was created from; once the ticket was closed and reopened, any
  thread on it counts.
* **No status change** for forwarded emails and replies to them, other
  emails the contact sends, replies sent from a user's connected personal
  mailbox, screened messages and our own automated mail coming back.
"""

from __future__ import annotations

from dataclasses import dataclass

from frontdesk.events import AGENT, CUSTOMER, DomainEvent, MessageReceived, MessageSent
from frontdesk.model.messages import INBOUND

EMAIL_SENT = "email_sent"
CUSTOMER_REPLIED = "customer_replied"


@dataclass(frozen=True)
class TriggerSettings:
    email_sent_enabled: bool
    email_sent_status_id: int | None
    customer_replied_enabled: bool
    customer_replied_status_id: int | None


@dataclass(frozen=True)
class TicketState:
    id: int
    pipeline_id: int
    status_id: int
    source_channel: str
    reopened: bool  # closed and reopened at least once
    pipeline_status_ids: frozenset[int]


@dataclass(frozen=True)
class SetStatus:
    status_id: int
    rule: str


@dataclass(frozen=True)
class NoChange:
    reason: str


def _target(enabled: bool, status_id: int | None, rule: str, ticket: TicketState) -> SetStatus | NoChange:
    if not enabled:
        return NoChange(f"{rule}_trigger_off")
    if status_id is None or status_id not in ticket.pipeline_status_ids:
        return NoChange(f"{rule}_no_target_status")
    if status_id == ticket.status_id:
        return NoChange("already_in_target_status")
    return SetStatus(status_id, rule)


def email_sent_trigger(event: MessageSent, config: TriggerSettings, ticket: TicketState) -> SetStatus | NoChange:
    if event.actor.kind != AGENT:
        return NoChange("not_sent_by_agent")
    if event.channel != "email":
        return NoChange("not_email")
    if not event.from_ticket:
        return NoChange("not_sent_from_ticket")
    return _target(config.email_sent_enabled, config.email_sent_status_id, EMAIL_SENT, ticket)


def customer_replied_trigger(event: MessageReceived, config: TriggerSettings, ticket: TicketState, *,
                             thread_forwarded: bool = False) -> SetStatus | NoChange:
    # Screened messages never get here: they are MessageScreened events.
    if event.channel != "email":
        return NoChange("not_email")
    if event.ticket_created:
        # The message that opened the ticket is not a reply to anything: the
        # ticket stays in its initial status (New) until someone answers.
        return NoChange("message_created_the_ticket")
    if event.direction != INBOUND:
        return NoChange("not_inbound")
    if event.is_automated:
        return NoChange("own_automated_mail")
    if event.is_forwarded:
        return NoChange("forwarded_email")
    if thread_forwarded:
        return NoChange("reply_to_forwarded_email")
    if event.via_personal_mailbox:
        return NoChange("sent_from_personal_mailbox")
    if event.author_kind != CUSTOMER or event.actor.kind != CUSTOMER:
        return NoChange("not_from_customer")
    reopened = ticket.reopened or event.ticket_reopened
    if not event.on_origin_thread and not reopened:
        return NoChange("other_email_from_contact")
    return _target(config.customer_replied_enabled, config.customer_replied_status_id, CUSTOMER_REPLIED, ticket)


def status_trigger(event: DomainEvent, config: TriggerSettings | None, ticket: TicketState, *,
                   thread_forwarded: bool = False) -> SetStatus | NoChange:
    """The status change ``event`` asks for under ``config``, or why there is none."""
    if config is None:
        return NoChange("pipeline_has_no_automation")
    if isinstance(event, MessageSent):
        return email_sent_trigger(event, config, ticket)
    if isinstance(event, MessageReceived):
        return customer_replied_trigger(event, config, ticket, thread_forwarded=thread_forwarded)
    return NoChange("not_a_trigger_event")
