"""Parsing raw mail off the event loop, in a process pool the daemon starts and stops.

Parsing is pure CPU (about 1.4 ms a mail), so a batch of mail is parsed in
worker processes while the event loop goes on with the edges and the
database: on a two-core machine the second core works.  What crosses the
process boundary is plain data (raw bytes and an :class:`Envelope` in, an
:class:`InboundMessage` or a :class:`QuarantineMessage` out).

``frontdesk run`` starts the pool with its other parts (:func:`start`,
sized by ``FRONTDESK_PARSE_WORKERS``, default one worker per core), so its
memory is there from the start rather than arriving with the first busy
minute, and stops it on shutdown (:func:`shutdown`).  Without a started
pool (``0`` workers, tests, tools) mail is parsed in-process.  Small
batches are parsed in-process too: for one mail the round trip to a
worker costs more than the parse.
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

_workers = 0  # the started pool's size; 0: no pool, parse in-process
_pool: ProcessPoolExecutor | None = None


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # Not fork: the daemon has threads (the database driver's), and a
        # forked child would inherit their locks mid-use.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["frontdesk.ingest.parse_email"])
        _pool = ProcessPoolExecutor(max_workers=_workers, mp_context=context)
    return _pool


def _ready() -> int:
    return os.getpid()


async def start(workers: int | None) -> int:
    """Start ``workers`` parse processes (None: one per core) and wait until each runs; how many there are."""
    global _workers
    wanted = default_workers() if workers is None else workers
    if wanted <= 0 or _workers:
        return _workers
    _workers = wanted
    loop = asyncio.get_running_loop()
    # A worker is spawned per task waiting while none is idle: this many
    # tasks at once start them all now, not at the first busy batch.
    await asyncio.gather(*(loop.run_in_executor(_executor(), _ready) for _ in range(wanted)))
    log.info("parse_pool.started", workers=wanted)
    return wanted


def use_pool(batch_size: int) -> bool:
    return batch_size >= MIN_BATCH and _workers > 0


async def parse_off_loop(raw: bytes, *, envelope: Envelope, raw_blob: str, pooled: bool) -> InboundMessage:
    """:func:`parse_email` in a worker process when ``pooled``, else here; same answers and exceptions."""
    if not pooled or not _workers:
        return parse_email(raw, envelope=envelope, raw_blob=raw_blob)
    global _pool
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _executor(), _parse, raw, envelope, raw_blob)
    except BrokenProcessPool:
        # A worker died (killed, out of memory): a new pool of the same
        # size starts at the next batch, and this mail is parsed here, so
        # no mail is lost to it.
        log.warning("parse_pool.broken")
        _pool = None
        return parse_email(raw, envelope=envelope, raw_blob=raw_blob)


def _parse(raw: bytes, envelope: Envelope, raw_blob: str) -> InboundMessage:
    return parse_email(raw, envelope=envelope, raw_blob=raw_blob)


def shutdown() -> None:
    """Stop the workers (daemon shutdown); mail is parsed in-process until :func:`start` again."""
    global _pool, _workers
    _workers = 0
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
