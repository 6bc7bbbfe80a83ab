"""Screen stage: decide, before any ticket exists, whether an inbound message is a person writing to us.

Rules run in order and the first match wins (Mailman's rule chain, Zammad's
pre-filters).  The order matters: loops first (our own mail must never be
treated as anything else), then bounces and reports, whose senders also set
``Auto-Submitted``, then the auto-reply markers.  Every verdict but
``ACCEPTED`` stores the message flagged, with no ticket and no automation.
Exact duplicates need the database and are screened by persistence.
What is "ours" (:class:`~ingest.screening.rule.Ours`) comes from the email
channels, so an address added at run time is recognised at once.
"""

from __future__ import annotations

from dataclasses import replace

from frontdesk.model.messages import ACCEPTED, BOUNCE, REPORT
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.screening.auto_reply import (
    AutoSubmitted,
    BulkPrecedence,
    MailerDaemonSender,
    NullReturnPath,
    VendorAutoReplyHeaders,
)
from frontdesk.ingest.screening.bounce import (
    DeliveryStatusReport,
    FailedRecipientsHeader,
    MailerDaemonBounce,
    SesBounceNotification,
    reported_message_ids,
)
from frontdesk.ingest.screening.loop import FromOwnAddress, OwnMarkerHeader, OwnMessageId, OwnXLoop
from frontdesk.ingest.screening.report import AbuseReport, DeliverySuccessReport, ReadReceipt, SesNotification
from frontdesk.ingest.screening.rule import Ours, ScreeningRule

RULES: tuple[ScreeningRule, ...] = (
    OwnMessageId(),
    OwnMarkerHeader(),
    FromOwnAddress(),
    OwnXLoop(),
    DeliverySuccessReport(),
    DeliveryStatusReport(),
    FailedRecipientsHeader(),
    SesBounceNotification(),
    MailerDaemonBounce(),
    SesNotification(),
    AbuseReport(),
    ReadReceipt(),
    AutoSubmitted(),
    VendorAutoReplyHeaders(),
    BulkPrecedence(),
    NullReturnPath(),
    MailerDaemonSender(),
)


def screen(message: InboundMessage, ours: Ours) -> InboundMessage:
    """The message with ``screening``, ``screening_reason`` and (for bounces) ``bounced_refs`` set.

    The rules read email headers and bounce texts; a chat line or form
    submission that happens to say "Undeliverable" is still a person, so
    other channels are accepted as they are.
    """
    if message.channel != "email":
        return replace(message, screening=ACCEPTED, screening_reason=None, bounced_refs=[])
    for rule in RULES:
        reason = rule.check(message, ours)
        if reason is None:
            continue
        return replace(
            message,
            screening=rule.verdict,
            screening_reason=f"{rule.name}: {reason}",
            bounced_refs=reported_message_ids(message) if rule.verdict == BOUNCE else [],
            # A bounce or report attaches the original; that does not make it a forward.
            is_forwarded=message.is_forwarded and rule.verdict not in (BOUNCE, REPORT),
        )
    return replace(message, screening=ACCEPTED, screening_reason=None, bounced_refs=[])
