"""Report rules: abuse feedback (ARF), read receipts (MDN) and delivery *success* notices are reports, not bounces or requests."""

from __future__ import annotations

import re

from frontdesk.model.messages import REPORT
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.screening.bounce import DSN_PART_TYPES, ses_notification_type
from frontdesk.ingest.screening.rule import Ours, report_evidence

_ACTION = re.compile(rb"^Action[ \t]*:[ \t]*([A-Za-z-]+)", re.IGNORECASE | re.MULTILINE)
SUCCESS_ACTIONS = {"delivered", "relayed", "expanded"}
_JMRP_MARKER = b"X-HmXmrOriginalRecipient:"


class AbuseReport:
    name = "abuse_report"
    description = "RFC 5965 abuse feedback (multipart/report; report-type=feedback-report) or a Microsoft JMRP complaint."
    verdict = REPORT

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        evidence = report_evidence(message, "feedback-report")
        if evidence:
            return f"{evidence} (abuse report)"
        # Microsoft's JMRP complaints predate ARF: the reported message is
        # attached with this header added.
        for attachment in message.attachments:
            if attachment.content_type == "message/rfc822" and _JMRP_MARKER in (attachment.data or b"")[:65_536]:
                return "attached message carries X-HmXmrOriginalRecipient (Microsoft JMRP complaint)"
        return None


class ReadReceipt:
    name = "read_receipt"
    description = "RFC 8098 message disposition notification (read receipt)."
    verdict = REPORT

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        evidence = report_evidence(message, "disposition-notification")
        return f"{evidence} (read receipt)" if evidence else None


class DeliverySuccessReport:
    name = "delivery_success_report"
    description = "A DSN whose every recipient was delivered, relayed or expanded: a receipt, not a bounce."
    verdict = REPORT

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        actions = [
            action.decode("ascii").lower()
            for attachment in message.attachments
            if attachment.content_type in DSN_PART_TYPES and attachment.data
            for action in _ACTION.findall(attachment.data)
        ]
        if actions and set(actions) <= SUCCESS_ACTIONS:
            return f"delivery status notification with Action: {', '.join(sorted(set(actions)))} only"
        return None


class SesNotification:
    name = "ses_notification"
    description = "Amazon SES complaint or delivery notification mailed through SNS: a report, not a request."
    verdict = REPORT

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        kind = ses_notification_type(message)
        if kind in ("Complaint", "Delivery"):
            return f'SES notification with "notificationType":"{kind}"'
        return None
