"""Parsing raw mail off the event loop, in a process pool sized to the cores.

Parsing is pure CPU (about 1.4 ms a mail), so a batch of mail is parsed in
worker processes while the event loop goes on with the edges and the
database: on a two-core machine the second core works.  What crosses the
process boundary is plain data (raw bytes and an :class:`Envelope` in, an
:class:`InboundMessage` or a :class:`QuarantineMessage` out).

Small batches are parsed in-process: for one mail the round trip to a
worker costs more than the parse.  ``FRONTDESK_PARSE_WORKERS=0`` parses
everything in-process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from frontdesk.ingest.message import Envelope, InboundMessage
from frontdesk.ingest.parse_email import parse_email

log = structlog.get_logger(__name__)

# Below this many mails in a batch, parsing in-process is cheaper.
MIN_BATCH = 4

_pool: ProcessPoolExecutor | None = None


def workers() -> int:
    configured = os.environ.get("FRONTDESK_PARSE_WORKERS")
    if configured is not None:
        return max(0, int(configured))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # Not fork: the daemon has threads (the database driver's), and a
        # forked child would inherit their locks mid-use.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["frontdesk.ingest.parse_email"])
        _pool = ProcessPoolExecutor(max_workers=workers(), mp_context=context)
    return _pool


def use_pool(batch_size: int) -> bool:
    return batch_size >= MIN_BATCH and workers() > 0


async def parse_off_loop(raw: bytes, *, envelope: Envelope, raw_blob: str, pooled: bool) -> InboundMessage:
    """:func:`parse_email` in a worker process when ``pooled``, else here; same answers and exceptions."""
    if not pooled:
        return parse_email(raw, envelope=envelope, raw_blob=raw_blob)
    global _pool
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _executor(), _parse, raw, envelope, raw_blob)
    except BrokenProcessPool:
        # A worker died (killed, out of memory): start a new pool next time
        # and parse this one here, so no mail is lost to it.
        log.warning("parse_pool.broken")
        _pool = None
        return parse_email(raw, envelope=envelope, raw_blob=raw_blob)


def _parse(raw: bytes, envelope: Envelope, raw_blob: str) -> InboundMessage:
    return parse_email(raw, envelope=envelope, raw_blob=raw_blob)


def shutdown() -> None:
    """Stop the workers (daemon shutdown); a later parse starts a new pool."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
