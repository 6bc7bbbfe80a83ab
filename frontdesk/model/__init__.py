"""The domain model: every table, imported here so metadata is complete."""

from frontdesk.model.base import Base, utcnow
from frontdesk.model.access import ApiToken, AuditEntry, PipelineAccess, Team, TeamMembership, User
from frontdesk.model.automation import EmailTemplate, PipelineAutomation, StatusAction
from frontdesk.model.channels import Channel
from frontdesk.model.contacts import Company, Contact, ContactIdentity
from frontdesk.model.intake import InboundPayload, MailboxCheckpoint, QuarantinedItem
from frontdesk.model.messages import Attachment, Conversation, Message
from frontdesk.model.outbox import AppliedEffect, DeadLetter, Delivery, OutboxEvent
from frontdesk.model.pipelines import Pipeline, Status
from frontdesk.model.probes import ReadinessProbe
from frontdesk.model.properties import PropertyDefinition, StageProperty
from frontdesk.model.tickets import Ticket, TicketParticipant

__all__ = [
    "ApiToken", "AppliedEffect", "Attachment", "AuditEntry", "Base", "Channel", "Company",
    "Contact", "ContactIdentity", "Conversation", "DeadLetter", "Delivery", "EmailTemplate",
    "InboundPayload", "MailboxCheckpoint", "Message", "OutboxEvent", "Pipeline",
    "PipelineAccess", "PipelineAutomation", "PropertyDefinition", "QuarantinedItem", "ReadinessProbe",
    "StageProperty", "Status", "StatusAction", "Team", "TeamMembership", "Ticket",
    "TicketParticipant", "User", "utcnow",
]
