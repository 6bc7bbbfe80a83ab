"""API errors as JSON: HTTP refusals and domain errors, rendered in one middleware.

Every refusal names the rule that was broken (``code``) and, where it helps,
the fields involved, so an agent knows what to fix.  ``ApiError`` is for
what only HTTP knows (authentication, malformed bodies); a broken ticket rule
arrives as a ``frontdesk.tickets.errors.DomainError`` and gets its status
from :data:`DOMAIN_STATUS`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from frontdesk.tickets.errors import Conflict, DomainError, Forbidden, InvalidQuery, NotFound


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_response(self) -> web.Response:
        body: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.details:
            body["error"].update(self.details)
        return web.json_response(body, status=self.status)


# Most specific class first: the first match gives the status.
DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (InvalidQuery, 400), (NotFound, 404), (Forbidden, 403), (Conflict, 409), (DomainError, 422))


def from_domain(error: DomainError) -> ApiError:
    status = next(code for cls, code in DOMAIN_STATUS if isinstance(error, cls))
    return ApiError(status, error.code, error.message, **error.details)


def not_found(what: str = "ticket") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(rule: str, message: str) -> ApiError:
    return ApiError(403, rule, message)


@web.middleware
async def error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except ApiError as error:
        return error.to_response()
    except DomainError as error:
        return from_domain(error).to_response()
