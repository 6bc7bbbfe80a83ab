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
