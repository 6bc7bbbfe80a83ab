"""The OpenAPI 3.1 document, merged from every route module and the daemon's extras, at ``/openapi.json``."""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable, Mapping

from aiohttp import web

from frontdesk.api.keys import OPENAPI_DOCUMENT
from frontdesk.api.parameters import ID_SCHEMA

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


# --- schema building blocks, so request schemas state the same limits everywhere ---------

def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI response object with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_request(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """An OpenAPI requestBody of JSON ``schema``; ``api.request_body`` refuses what it forbids."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def closed_object(properties: dict[str, Any], *required: str, **extra: Any) -> dict[str, Any]:
    """A JSON object with exactly these fields (an unknown one is ``422 unknown_fields``)."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def answer_object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """A JSON object the API answers with: these fields (``required`` always there), maybe more later."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def text(max_length: int = 200, **extra: Any) -> dict[str, Any]:
    """A non-blank string of at most ``max_length`` characters (``api.request_body.text_field``'s rule)."""
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S", **extra}


def id_list() -> dict[str, Any]:
    return {"type": "array", "items": ID_SCHEMA}


def list_of(name: str, item: dict[str, Any]) -> dict[str, Any]:
    """``{name: [item, ...]}``, the shape of every collection answer."""
    return {"type": "object", "required": [name], "properties": {name: {"type": "array", "items": item}}}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}

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
                    for status, response in responses.items():
                        # Every refusal is the JSON error body; a module need only describe when it happens.
                        if status[0] in "45" and "content" not in response:
                            response["content"] = error_response("")["content"]
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
    return web.json_response(request.app[OPENAPI_DOCUMENT])
