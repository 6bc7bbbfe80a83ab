"""TEMPORARY stand-in for ingest.pipeline.ingest_email until it lands (not committed)."""
from email import message_from_bytes
from sqlalchemy import select
from frontdesk.model.messages import Message
from frontdesk.model.pipelines import Pipeline, Status
from frontdesk.model.tickets import Ticket
from frontdesk.storage.blobs import sha256_hex
from frontdesk.storage.database import StorageUnavailable, is_storage_outage
from ingest.message import IngestOutcome


async def ingest_email(ctx, raw, envelope):
    digest = await ctx.blobs.put(raw)
    parsed = message_from_bytes(raw)
    mid = (parsed.get("Message-ID") or "").strip().strip("<>") or None
    try:
        async with ctx.sessions() as session, session.begin():
            existing = await session.scalar(select(Message).where(Message.content_hash == digest))
            if existing is not None:
                return IngestOutcome("duplicate", existing.ticket_id, existing.id)
            pipeline = await session.scalar(select(Pipeline).order_by(Pipeline.id))
            status = await session.scalar(select(Status).where(Status.pipeline_id == pipeline.id).order_by(Status.position))
            ticket = Ticket(name=parsed.get("Subject") or "", pipeline_id=pipeline.id, status_id=status.id, source_channel="email")
            session.add(ticket)
            await session.flush()
            message = Message(ticket_id=ticket.id, direction="inbound", channel="email", external_id=mid,
                              raw_blob=digest, content_hash=digest, subject=parsed.get("Subject"), source=envelope.source)
            session.add(message)
            await session.flush()
            return IngestOutcome("ticket_created", ticket.id, message.id)
    except Exception as error:
        if is_storage_outage(error):
            raise StorageUnavailable(str(error)) from error
        raise
