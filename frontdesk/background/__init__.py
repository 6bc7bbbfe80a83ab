"""The background-work toolkit: how every long-running task of ours backs off, retries and stops.

* :class:`Backoff`: capped, jittered exponential delays (``delay(attempt)``).
* :class:`RetryingProcessor`: handle one item with bounded retries and
  dead-letter what still fails; it never lets an error out.
* :func:`finish_or_cancel` and :class:`PollingLoop`: a task is stopped by
  letting its work in flight finish within a grace period, then cancelling.

The SQLite writer turn is storage's (:func:`frontdesk.storage.writer.write_transaction`).
"""

from frontdesk.background.backoff import Backoff
from frontdesk.background.retry import DEAD_LETTERED, HANDLED, RetryingProcessor, RetryPolicy
from frontdesk.background.tasks import PollingLoop, finish_or_cancel

__all__ = ["Backoff", "DEAD_LETTERED", "HANDLED", "PollingLoop", "RetryPolicy", "RetryingProcessor",
           "finish_or_cancel"]
