"""The email deliverer: the stored MIME bytes go to the smarthost, or to the spool without one.

The message was composed once, when its delivery was queued, and stored as
a blob; every attempt sends those same bytes, so a retry can only repeat
the same Message-ID.  The delivery loop's pooled smarthost sessions carry
it when the job has them (``job.smarthost``).
"""

from __future__ import annotations

from frontdesk.outbound.dispatch import DeliveryJob, PermanentDeliveryError
from frontdesk.outbound.email.smarthost import send_via_smarthost
from frontdesk.outbound.email.spool import write_to_spool

EMAIL = "email"


async def deliver_email(job: DeliveryJob) -> str | None:
    raw_blob = job.payload.get("raw_blob")
    if not raw_blob:
        raise PermanentDeliveryError("delivery has no stored message")
    raw = await job.blobs.get(raw_blob)
    recipients = list(job.payload.get("recipients") or [job.recipient])
    sender = job.payload.get("envelope_from") or job.settings.from_address
    if job.settings.smarthost is None:
        path = await write_to_spool(job.settings.spool_dir, job.idempotency_key, raw)
        return f"spool:{path.name}"
    if job.smarthost is not None:
        return await job.smarthost.send(job.settings.smarthost, sender=sender, recipients=recipients, raw=raw)
    return await send_via_smarthost(job.settings.smarthost, sender=sender, recipients=recipients, raw=raw)

