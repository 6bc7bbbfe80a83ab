"""Handle one item with bounded retries; dead-letter what still fails; never let an error out.

Both automation runners (the embedded one and the faust agent) apply events
through this.  faust acknowledges a message whose agent raised, which would
lose the event silently, so :meth:`RetryingProcessor.process` returns only
once the item was handled or dead-lettered, and catches every error itself.
A transient error (by default a storage outage) is not the item's fault: it
is retried for as long as it lasts and never dead-letters the item.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Mapping, TypeVar

import structlog

from frontdesk.background.backoff import Backoff
from frontdesk.storage.database import is_storage_outage

log = structlog.get_logger(__name__)

T = TypeVar("T")

HANDLED = "handled"
DEAD_LETTERED = "dead-lettered"

# Waiting out an outage, or retrying the dead letter itself, never waits
# longer than this attempt's delay: the next try should come soon after recovery.
_OUTAGE_ATTEMPT_CAP = 8


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing item is tried (``max_attempts``) and how long to wait in between."""

    max_attempts: int = 5
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=5.0))


def describe_error(error: BaseException) -> str:
    """The error text a dead letter keeps."""
    return f"{type(error).__name__}: {error}"[:4000]


class RetryingProcessor(Generic[T]):
    """``process(item)`` calls ``handle(item)`` until it works or ``policy.max_attempts`` failed.

    Then ``dead_letter(item, error, attempts)`` keeps it, retried until that
    succeeds.  ``name`` prefixes the log events; ``describe(item)`` adds the
    item's identity to them; the ``on_*`` callbacks count outcomes (metrics).
    """

    def __init__(
        self,
        handle: Callable[[T], Awaitable[Any] | Any],
        dead_letter: Callable[[T, str, int], Awaitable[None]],
        *,
        name: str,
        policy: RetryPolicy = RetryPolicy(),
        describe: Callable[[T], Mapping[str, Any]] = lambda item: {},
        is_transient: Callable[[BaseException], bool] = is_storage_outage,
        on_handled: Callable[[], None] = lambda: None,
        on_retry: Callable[[], None] = lambda: None,
        on_dead_lettered: Callable[[], None] = lambda: None,
    ) -> None:
        self._handle = handle
        self._dead_letter = dead_letter
        self.name = name
        self.policy = policy
        self._describe = describe
        self._is_transient = is_transient
        self._on_handled = on_handled
        self._on_retry = on_retry
        self._on_dead_lettered = on_dead_lettered

    async def process(self, item: T) -> str:
        """Handle ``item``; returns :data:`HANDLED` or :data:`DEAD_LETTERED`, never raises."""
        failures = 0
        outages = 0
        while True:
            try:
                result = self._handle(item)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._is_transient(error):
                    outages += 1
                    log.warning(f"{self.name}_storage_outage", **self._describe(item), error=repr(error))
                    await asyncio.sleep(self.policy.backoff.delay(min(outages, _OUTAGE_ATTEMPT_CAP)))
                    continue
                failures += 1
                if failures >= self.policy.max_attempts:
                    log.error(f"{self.name}_dead_lettered", **self._describe(item), attempts=failures,
                              error=repr(error))
                    await self.dead_letter(item, describe_error(error), attempts=failures)
                    return DEAD_LETTERED
                self._on_retry()
                log.warning(f"{self.name}_retry", **self._describe(item), attempt=failures, error=repr(error))
                await asyncio.sleep(self.policy.backoff.delay(failures))
            else:
                self._on_handled()
                return HANDLED

    async def dead_letter(self, item: T, error: str, *, attempts: int) -> None:
        """Keep ``item`` as a dead letter now (e.g. it cannot even be decoded); retried until it works."""
        tries = 0
        while True:
            try:
                await self._dead_letter(item, error, attempts)
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                tries += 1
                log.warning(f"{self.name}_dead_letter_retry", **self._describe(item), error=repr(failure))
                await asyncio.sleep(self.policy.backoff.delay(min(tries, _OUTAGE_ATTEMPT_CAP)))
            else:
                self._on_dead_lettered()
                return
