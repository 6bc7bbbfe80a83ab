"""API errors as JSON: one exception type, rendered in one middleware.

Every refusal names the rule that was broken (``code``) and, where it helps,
the fields involved, so an agent knows what to fix.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


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
