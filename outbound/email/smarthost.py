"""Send one message to the configured smarthost with aiosmtplib.

The SMTP reply decides what happens next: 4xx, timeouts and refused
connections are temporary (the delivery loop retries with backoff), 5xx is
permanent.  A refused login is treated as temporary: it is a configuration
problem an operator fixes, and the queued mail should survive it.
"""

from __future__ import annotations

import aiosmtplib

from frontdesk.settings import SmarthostSettings
from frontdesk.outbound.dispatch import PermanentDeliveryError, TemporaryDeliveryError

TIMEOUT = 30.0


def _classify(code: int, detail: str) -> Exception:
    if 500 <= code < 600:
        return PermanentDeliveryError(f"smarthost refused: {code} {detail}")
    return TemporaryDeliveryError(f"smarthost deferred: {code} {detail}")


async def send_via_smarthost(config: SmarthostSettings, *, sender: str, recipients: list[str],
                             raw: bytes, timeout: float = TIMEOUT) -> str:
    """Hand ``raw`` to the smarthost; return its final reply text (usually naming its queue id)."""
    try:
        _, reply = await aiosmtplib.send(
            raw,
            sender=sender,
            recipients=recipients,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password.reveal() if config.password else None,
            use_tls=config.tls == "ssl",
            start_tls=True if config.tls == "starttls" else False,
            timeout=timeout,
        )
    except aiosmtplib.SMTPAuthenticationError as error:
        raise TemporaryDeliveryError(f"smarthost login refused: {error.code} {error.message}") from error
    except aiosmtplib.SMTPRecipientsRefused as error:
        # Every recipient was refused; permanent only if every refusal was.
        codes = [r.code for r in error.recipients]
        worst = max(codes) if all(c >= 500 for c in codes) else min(codes)
        raise _classify(worst, "; ".join(f"{r.recipient}: {r.message}" for r in error.recipients)) from error
    except aiosmtplib.SMTPResponseException as error:
        raise _classify(error.code, error.message) from error
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise TemporaryDeliveryError(f"smarthost unreachable: {error!r}") from error
    return reply
