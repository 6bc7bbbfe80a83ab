"""The domain model: every table, imported here so metadata is complete."""

from frontdesk.model.base import Base, utcnow
from frontdesk.model.access import ApiToken, AuditEntry, PipelineAccess, Team, TeamMembership, User
from frontdesk.model.automation import EmailTemplate, PipelineAutomation, StatusAction
from frontdesk.model.channels import Channel
from frontdesk.model.comments import Comment, Snippet
from frontdesk.model.contacts import Company, Contact, ContactIdentity, TicketCompany, TicketContact
from frontdesk.model.inboxes import ConversationMove, Inbox
from frontdesk.model.intake import InboundPayload, MailboxCheckpoint, MailboxLease, QuarantinedItem
from frontdesk.model.messages import Attachment, Conversation, Message
from frontdesk.model.outbox import AppliedEffect, DeadLetter, Delivery, OutboxEvent
from frontdesk.model.pipelines import Pipeline, Status
from frontdesk.model.probes import ReadinessProbe
from frontdesk.model.properties import PropertyDefinition, StageProperty
from frontdesk.model.sla import SlaClock, SlaSettingsRow
from frontdesk.model.tickets import Ticket, TicketCount, TicketParticipant
from frontdesk.model.views import TicketSearchDocument, TicketView, TicketViewTeam

__all__ = [
    "ApiToken", "AppliedEffect", "Attachment", "AuditEntry", "Base", "Channel", "Comment", "Company",
    "Contact", "ContactIdentity", "Conversation", "ConversationMove", "DeadLetter", "Delivery",
    "EmailTemplate", "InboundPayload", "Inbox", "MailboxCheckpoint", "MailboxLease", "Message", "OutboxEvent",
    "Pipeline", "PipelineAccess", "PipelineAutomation", "PropertyDefinition", "QuarantinedItem", "ReadinessProbe",
    "SlaClock", "SlaSettingsRow", "Snippet", "StageProperty", "Status", "StatusAction", "Team", "TeamMembership",
    "Ticket", "TicketCount",
    "TicketCompany", "TicketContact", "TicketParticipant", "TicketSearchDocument", "TicketView", "TicketViewTeam",
    "User", "utcnow",
]
