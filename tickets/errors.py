"""Domain errors: a ticket rule was broken, said with a code and the names involved.

Rules raise these; they know nothing of HTTP.  ``frontdesk.api.errors``
turns them into answers (one mapping from class to status), the config CLI
prints them, ingest quarantines on them.  ``details`` name what is involved
(``field``, ``property``, ``missing``, ...) and travel into the answer's body.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A value or a change breaks a rule (the API answers 422)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class Conflict(DomainError):
    """The change is well formed but the current state forbids it (the API answers 409)."""


class Forbidden(DomainError):
    """The caller sees the thing but this change is not theirs to make (the API answers 403)."""


class NotFound(DomainError):
    """The thing named does not exist, or the caller may not see it (the API answers 404)."""

    def __init__(self, what: str = "ticket") -> None:
        super().__init__("not_found", f"{what} not found")


class InvalidQuery(DomainError):
    """A list query (a filter, a sort) cannot be read (the API answers 400)."""
