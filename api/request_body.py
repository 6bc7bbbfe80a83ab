"""Reading and checking JSON request bodies, so every handler refuses bad input the same way.

The operation's OpenAPI request schema is the gate: :func:`request_schema_middleware`
checks every authenticated request body against it before the handler
runs, so what the document forbids (a missing or unknown field, a wrong
type, a value out of its enum or bounds, a string over its ``maxLength``)
is refused with one error naming the field, and the document cannot drift
from what is enforced.  Handlers then read fields with the helpers below and
apply the domain's rules.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aiohttp import web
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from frontdesk.api.errors import ApiError
from frontdesk.api.parameters import MAX_ID, path_id

__all__ = ["REQUEST_SCHEMAS", "bool_field", "int_field", "int_list_field", "json_body", "path_id",
           "request_schema_middleware", "request_schemas", "text_field"]

_DOCUMENT_URI = "urn:frontdesk:openapi"
_METHODS = ("get", "put", "post", "delete", "patch")


def _not_a_json_object() -> ApiError:
    return ApiError(400, "invalid_json", "the request body must be a JSON object")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or 400 ``invalid_json``."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: JSON nested thousands of levels deep.
        raise _not_a_json_object() from None
    if not isinstance(body, dict):
        raise _not_a_json_object()
    try:
        found = _bad_text_at(body)
    except RecursionError:  # nested nearly as deep as the parser allows
        raise _not_a_json_object() from None
    if found is not None:
        where, flaw = found
        if flaw == SURROGATE:
            raise ApiError(400, "invalid_json", "the request body holds text that is not valid Unicode")
        raise ApiError(422, "field_invalid", f"{where or 'a key'!r} holds a NUL character", field=where)
    return body


NUL, SURROGATE = "nul", "surrogate"


def _text_flaw(text: str) -> str | None:
    """Why no database can store ``text``: a NUL character, or a lone surrogate; None if it can be stored.

    PostgreSQL text cannot hold NUL: stored or compared, it fails in the
    driver (a 500), so it is refused at the edge, like a malformed value.
    JSON may escape a lone surrogate ("\\ud800"): Python keeps it, but it is
    not Unicode that any database stores.
    """
    if "\x00" in text:
        return NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE
    return None


def _bad_text_at(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first key or string in a JSON value that cannot be stored: (its dotted path, the flaw), or None."""
    if isinstance(value, str):
        flaw = _text_flaw(value)
        return (path, flaw) if flaw else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        inner = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and (flaw := _text_flaw(key)):
            return inner, flaw
        if (found := _bad_text_at(item, inner)) is not None:
            return found
    return None


# --- the request schema gate ------------------------------------------------------

def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass(frozen=True)
class RequestSchema:
    """One operation's body check: the validator, whether a body is required, and the resolved schema."""

    validator: Draft202012Validator
    required: bool
    schema: Mapping[str, Any]


def _resolved(resolver: Any, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = resolver.lookup(schema["$ref"]).contents
    return schema


def request_schemas(document: Mapping[str, Any]) -> dict[tuple[str, str], RequestSchema]:
    """(METHOD, path template) -> its body check, for authenticated operations with a JSON body.

    Public operations (the webhooks) store their raw body before any check and
    describe their own answers, so they are left to their handlers.
    """
    registry: Registry = Registry().with_resource(
        _DOCUMENT_URI, Resource.from_contents(dict(document), default_specification=DRAFT202012))
    table = {}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS or operation.get("security") == []:
                continue
            body = operation.get("requestBody", {})
            if "application/json" not in body.get("content", {}):
                continue
            # A $ref into the whole document, so the schema's own "#/components/..." refs resolve.
            ref = f"{_DOCUMENT_URI}#/" + _pointer("paths", path, method, "requestBody", "content",
                                                  "application/json", "schema")
            resolver = registry.resolver(_DOCUMENT_URI)
            table[(method.upper(), path)] = RequestSchema(
                Draft202012Validator({"$ref": ref}, registry=registry), bool(body.get("required")),
                _resolved(resolver, resolver.lookup(ref).contents))
    return table


REQUEST_SCHEMAS = web.AppKey("request_schemas", dict)


@functools.lru_cache(maxsize=1024)  # one per route: asked on every request
def path_template(canonical: str) -> str:
    """A route's path as OpenAPI writes it: aiohttp's ``{ticket_id:\\d+}`` is ``{ticket_id}``."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical)


def _field(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path)


def _first(errors: Iterable[ValidationError]) -> ValidationError | None:
    """The error to report: the shallowest (a missing field before a bad value), made specific."""
    error = min(errors, key=lambda e: (len(e.absolute_path), e.validator != "required"), default=None)
    return _specific(error) if error is not None else None


def _specific(error: ValidationError) -> ValidationError:
    """Into a oneOf / anyOf: the error of the one branch whose ``const`` (a ``kind``) the body matched.

    ``{"kind": "notify", "recipient": {...}}`` then fails on what is wrong
    with its recipient, not on "kind should be send_email".  When no branch
    or several match, the error stays on the field holding the choice.
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return error
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    chosen = [errors for errors in branches.values() if not any(e.validator == "const" for e in errors)]
    if len(chosen) == 1:
        return _first(chosen[0]) or error
    if not chosen and len(kinds := {tuple(e.absolute_path) for e in error.context if e.validator == "const"}) == 1:
        # No branch has this kind: say which kinds there are.
        field = next(e for e in error.context if e.validator == "const")
        valid = [e.validator_value for e in error.context if e.validator == "const"]
        return ValidationError(f"must be one of {', '.join(map(str, valid))}", validator="enum",
                               validator_value=valid, instance=field.instance, path=field.absolute_path)
    return error


def _declared_error(schema: Mapping[str, Any], path: Any) -> dict[str, Any] | None:
    """The ``x-error`` (a rule's own code and details) of the deepest property on ``path`` that declares one.

    A field whose values a domain rule already names (``priority`` ->
    ``property_value_invalid``) keeps that rule's code when the schema
    refuses the value first; a field inside it inherits the code.
    """
    found = None if path else schema.get("x-error")  # the body's own: only for what is wrong with it as a whole
    for part in path:
        if isinstance(part, int):
            schema = schema.get("items", {}) if isinstance(schema.get("items"), dict) else {}
        else:
            schema = _property(schema, part)
        found = schema.get("x-error", found)
    return found


def _property(schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The schema of field ``name`` in an object schema, or in the first branch of a choice that has it."""
    if name in schema.get("properties", {}):
        return schema["properties"][name]
    for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        if found := _property(branch, name):
            return found
    return {}


def refusal(error: ValidationError, schema: Mapping[str, Any] | None = None) -> ApiError:
    """The one error a schema violation becomes: 422 naming the field and the broken constraint."""
    field = _field(error)
    declared = _declared_error(schema, error.absolute_path) if schema is not None else None
    if declared is not None and error.validator not in ("additionalProperties", "required"):
        details = {key: value for key, value in declared.items() if key != "code"}
        return ApiError(422, declared["code"], f"{field!r} is invalid: {error.message[:200]}",
                        **{"field": field, **details})
    validator, value = error.validator, error.validator_value
    if validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f" in {field!r}" if field else ""
        return ApiError(422, "unknown_fields", f"unknown field(s){where}: {', '.join(unknown)}",
                        fields=[f"{field}.{name}" if field else name for name in unknown])
    if validator == "required":
        missing = next((name for name in value if name not in error.instance), value[0])
        name = f"{field}.{missing}" if field else missing
        return ApiError(422, "field_required", f"{name!r} is required", field=name)
    if validator == "maxLength" or validator == "maxItems":
        return ApiError(422, "field_too_long", f"{field!r} is longer than {value}", field=field, maximum=value)
    if validator == "enum":
        return ApiError(422, "field_invalid", f"{field!r} must be one of {', '.join(map(str, value))}",
                        field=field, valid=list(value))
    return ApiError(422, "field_invalid", f"{field or 'the body'!r} is invalid: {error.message[:200]}",
                    field=field, constraint=validator)


@web.middleware
async def request_schema_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Refuse a body the operation's request schema forbids (query values: ``api.parameters.query_text_middleware``)."""
    resource = request.match_info.route.resource
    entry = request.config_dict.get(REQUEST_SCHEMAS, {}).get(
        (request.method, path_template(resource.canonical))) if resource else None
    if entry is None:
        return await handler(request)
    if not entry.required and not request.body_exists:
        return await handler(request)
    body = await json_body(request)  # aiohttp keeps the bytes: the handler reads them again
    try:
        error = _first(entry.validator.iter_errors(body))
    except RecursionError:
        raise _not_a_json_object() from None
    if error is not None:
        raise refusal(error, entry.schema)
    return await handler(request)


def text_field(body: dict[str, Any], name: str, *, required: bool = True, max_length: int = 200) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(422, "field_required", f"{name!r} is required", field=name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "field_invalid", f"{name!r} must be a non-empty string", field=name)
    if len(value) > max_length:
        raise ApiError(422, "field_too_long", f"{name!r} is longer than {max_length} characters", field=name)
    return value.strip()


def bool_field(body: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, "field_invalid", f"{name!r} must be true or false", field=name)
    return value


def int_field(body: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(422, "field_required", f"{name!r} is required", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_ID - 1 <= value <= MAX_ID:
        raise ApiError(422, "field_invalid", f"{name!r} must be an integer between {-MAX_ID - 1} and {MAX_ID}", field=name)
    return value


def int_list_field(body: dict[str, Any], name: str) -> list[int]:
    value = body.get(name)
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and -MAX_ID - 1 <= v <= MAX_ID for v in value):
        raise ApiError(422, "field_invalid", f"{name!r} must be a list of integers", field=name)
    return value
