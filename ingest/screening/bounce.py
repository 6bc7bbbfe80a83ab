"""Bounce rules: delivery status notifications, standard (RFC 3464) or not, and the ids of the mail they report on.

A standard DSN is ``multipart/report; report-type=delivery-status`` with a
``message/delivery-status`` part.  Many MTAs (qmail, older sendmail and
Exchange, providers' own formats) send plain text instead; those are
recognised by a bounce-ish sender (MAILER-DAEMON, postmaster, an empty
From) together with a bounce-ish subject, or by Exim's
``X-Failed-Recipients``.
"""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

from frontdesk.model.messages import BOUNCE
from frontdesk.ingest.email_parts.headers import message_ids
from frontdesk.ingest.message import InboundMessage
from frontdesk.ingest.screening.rule import Ours, header, local_part, report_evidence

DSN_PART_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_PART_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")

BOUNCE_SENDER = re.compile(
    r"mailer.?daemon|mail.?daemon|po+st.?master|mail.?delivery|delivery.?(?:system|subsystem|notification)|^mdaemon$|^sysadmin$",
    re.IGNORECASE,
)

BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|non.?deliver|not (?:be )?delivered|delivery (?:status|failure|notification|problem|has failed|fail)"
    r"|returned mail|mail delivery|failure notice|failed delivery|delivery failed|could not be delivered"
    r"|mail system error|permanent error|warning: could not send|message not delivered|rejected|bounced?"
    r"|returned to sender|unzustellbar|nicht zustellbar|non remis|no entregado|unable to deliver|system administrator"
    r"|mail failure|delivery report|error sending|transmission failure|nondeliverable|message you sent|unknown user"
    r"|user unknown|mailbox (?:full|unavailable)|over ?quota|address (?:not found|error)|dsn|delay|could not send"
    r"|mail failed|failure delivery|配信できません|配送エラー|エラー通知|送信できません|届きませんでした",
    re.IGNORECASE,
)

_NO_REPLY = re.compile(r"^no-?reply$|^do-?not-?reply$", re.IGNORECASE)

BOUNCE_BODY = re.compile(
    r"undeliverable|could not be delivered|delivery (?:has )?failed|permanent(?:ly)? (?:error|fatal)|user unknown"
    r"|unknown user|does not exist|no such (?:user|mailbox|recipient)|mailbox (?:is )?(?:full|unavailable)"
    r"|message (?:was )?(?:not|could not be) (?:delivered|sent)|returned to sender|delivery to the following"
    r"|did not reach the following recipient|送信できませんでした|配信できませんでした",
    re.IGNORECASE,
)
BODY_SCAN = 3000  # the daemon's explanation comes first; the original follows

# A copy of the original's headers inside a text bounce: "Message-ID: <x@y>",
# possibly folded onto the next line, possibly quoted with "> ".
_BODY_MESSAGE_ID = re.compile(r"^[ \t>]*Message-I[dD][ \t]*:[ \t]*(?:\r?\n[ \t]+)?<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
# The same inside a JSON notification: {"name":"Message-ID","value":"<x@y>"}.
_JSON_MESSAGE_ID = re.compile(r'"name"\s*:\s*"Message-I[dD]"\s*,\s*"value"\s*:\s*"<([^"<>\s]+)>"', re.IGNORECASE)


class DeliveryStatusReport:
    name = "delivery_status_report"
    description = "RFC 3464 DSN: multipart/report; report-type=delivery-status, or a message/delivery-status part."
    verdict = BOUNCE

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        return report_evidence(message, "delivery-status")


class FailedRecipientsHeader:
    name = "failed_recipients_header"
    description = "X-Failed-Recipients, which Exim adds to every bounce it sends."
    verdict = BOUNCE

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        value = header(message, "x-failed-recipients")
        return f"X-Failed-Recipients: {value.strip()[:200]}" if value else None


# Amazon SES can deliver its notifications by mail through SNS: the text
# body is the JSON notification, bare or string-escaped inside SNS's envelope.
_SES_NOTIFICATION = re.compile(r'\\?"notificationType\\?"\s*:\s*\\?"(Bounce|Complaint|Delivery)\\?"')


def ses_notification_type(message: InboundMessage) -> str | None:
    """"Bounce", "Complaint" or "Delivery" for an SES notification mailed via SNS, else None."""
    body = (message.text_body or "").lstrip()
    match = _SES_NOTIFICATION.search(body[:4000]) if body.startswith("{") else None
    return match.group(1) if match else None


class SesBounceNotification:
    name = "ses_bounce_notification"
    description = 'Amazon SES bounce notification mailed through SNS (JSON body, "notificationType":"Bounce").'
    verdict = BOUNCE

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        if ses_notification_type(message) == "Bounce":
            return 'SES notification with "notificationType":"Bounce"'
        return None


class MailerDaemonBounce:
    name = "mailer_daemon_bounce"
    description = (
        "Non-standard bounce: a bounce subject or opening text from MAILER-DAEMON / postmaster, from nobody,"
        " with Return-Path <>, or from a no-reply sender that attaches the original."
    )
    verdict = BOUNCE

    def check(self, message: InboundMessage, ours: Ours) -> str | None:
        sender = local_part(message.sender_address)
        null_path = (header(message, "return-path") or "x").strip() in ("<>", "")
        daemon = not sender or bool(BOUNCE_SENDER.search(sender))
        # "no-reply" senders that attach the original (carriers' own notices).
        no_reply_with_original = bool(_NO_REPLY.search(sender)) and any(
            a.content_type in ORIGINAL_PART_TYPES for a in message.attachments
        )
        if not (daemon or null_path or no_reply_with_original):
            return None
        who = f"From: {message.sender_address}" if sender else "no From"
        if null_path:
            who += ", Return-Path: <>"
        subject = message.subject or ""
        if BOUNCE_SUBJECT.search(subject):
            return f"{who} and subject {subject.strip()[:120]!r}"
        # A reply-style or bare subject is common ("Re: <original subject>",
        # "Mail"), so look at the opening text too.
        opening = BOUNCE_BODY.search((message.text_body or "")[:BODY_SCAN])
        if opening:
            return f"{who} and the text says {opening.group(0)!r}"
        return None


def reported_message_ids(message: InboundMessage) -> list[str]:
    """Message-IDs of the mail a bounce reports on, most reliable source first.

    1. the attached original (message/rfc822 or text/rfc822-headers part),
    2. a copy of the original's headers inside the text body (or an SES JSON notification),
    3. the bounce's own In-Reply-To / References (some MTAs thread their DSNs).
    """
    found: list[str] = []
    for attachment in message.attachments:
        if attachment.content_type in ORIGINAL_PART_TYPES and attachment.data:
            found += _ids_in_headers(attachment.data)
    if not found and message.text_body:
        found = [m.group(1) for m in _BODY_MESSAGE_ID.finditer(message.text_body)]
        found = found or [m.group(1) for m in _JSON_MESSAGE_ID.finditer(message.text_body)]
    if not found:
        found = [*message.in_reply_to, *message.references]
    own = message.external_id
    return [i for i in dict.fromkeys(found) if i != own]


def _ids_in_headers(data: bytes) -> list[str]:
    try:
        original = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
        values = [value for name, value in original.raw_items() if name.lower() == "message-id"]
    except Exception:  # a damaged copy of the original: nothing to link
        return []
    return [i for value in values for i in message_ids(str(value))]
