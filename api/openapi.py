"""The OpenAPI 3.1 document, merged from every route module and the daemon's extras, at ``/openapi.json``."""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable, Mapping

from aiohttp import web

from frontdesk.api.app import OPENAPI_FRAGMENTS

routes = web.RouteTableDef()


def _version() -> str:
    try:
        return version("frontdesk")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response object for our JSON error body."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


# Responses every authenticated endpoint can give; modules spread this into theirs.
AUTH_ERRORS = {"401": error_response("Missing or wrong bearer token.")}

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def common_errors(path: str, method: str, operation: Mapping[str, Any]) -> dict[str, Any]:
    """The error responses the shared machinery gives on an authenticated operation, whatever its handler.

    ``400`` for a body that is not a JSON object (``invalid_json``) or a
    malformed query parameter (``invalid_parameter``); ``401``; ``404`` for a
    path naming nothing (or nothing the caller may see, or an id that cannot
    exist); ``413`` for a body over ``[http] max_body_size``; ``422`` for a
    body field ``api.request_body`` refuses; ``503`` while storage is down.  :func:`merge_openapi` adds those an operation does not
    describe itself, so no operation can forget one.
    """
    if operation.get("security") == []:
        return {}  # public endpoints (health, metrics, webhooks) describe their own answers
    # Every write operation reads a JSON body through api.request_body, documented or not.
    has_body = "requestBody" in operation or method in ("post", "put", "patch")
    has_query = any(p.get("in") == "query" for p in operation.get("parameters", ()))
    errors: dict[str, Any] = dict(AUTH_ERRORS)
    if has_body or has_query:
        errors["400"] = error_response(
            " ".join(filter(None, ("invalid_json: the body is not a JSON object." if has_body else "",
                                   "invalid_parameter: a query parameter is malformed." if has_query else ""))))
    if "{" in path:
        errors["404"] = error_response("not_found: nothing there, or nothing the caller may see.")
    if has_body:
        errors["422"] = error_response("A body field is missing, of the wrong type or too long (field_required, "
                                       "field_invalid, field_too_long, naming the field), or breaks a rule.")
        errors["413"] = error_response("payload_too_large: the body is over [http] max_body_size.")
    errors["503"] = error_response("storage_unavailable: the database or blob storage is down; retry after "
                                   "Retry-After seconds.")
    return errors

BASE_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Frontdesk API",
        "version": _version(),
        "description": "Tickets, messages and administration of a Frontdesk helpdesk.",
        "license": {"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"},
    },
    "security": [{"bearer": []}],
    "paths": {},
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The operator token (FRONTDESK_API_TOKEN) or a user's API token.",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "description": "Stable, machine-readable rule name."},
                            "message": {"type": "string"},
                        },
                        "additionalProperties": True,
                    }
                },
            }
        },
    },
}


def merge_openapi(fragments: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge fragments into one document; a path's operations may come from several fragments."""
    document = copy.deepcopy(BASE_DOCUMENT)
    for fragment in fragments:
        for path, operations in fragment.get("paths", {}).items():
            target = document["paths"].setdefault(path, {})
            for method, operation in operations.items():
                if method in target:
                    raise ValueError(f"OpenAPI operation {method.upper()} {path} is defined twice")
                target[method] = copy.deepcopy(operation)
                if method in METHODS:
                    responses = target[method].setdefault("responses", {})
                    for status, response in common_errors(path, method, operation).items():
                        responses.setdefault(status, response)
        for section, entries in fragment.get("components", {}).items():
            document["components"].setdefault(section, {}).update(copy.deepcopy(entries))
    return document


PUBLIC = {"security": []}

OPENAPI: dict[str, Any] = {
    "paths": {
        "/openapi.json": {
            "get": {
                "summary": "This OpenAPI 3.1 document",
                "operationId": "getOpenApi",
                "tags": ["operations"],
                **PUBLIC,
                "responses": {"200": {"description": "The document.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        }
    }
}


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(merge_openapi(request.app[OPENAPI_FRAGMENTS]))
