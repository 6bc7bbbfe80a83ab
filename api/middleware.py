"""Cross-cutting HTTP behaviour: request ids, the structured access log, request metrics, JSON errors.

Every response carries an ``X-Request-Id`` (the caller's, when it sent a
sane one), and every request ends in one access-log line with that id.
aiohttp's own refusals (unknown route, wrong method, body too large) and
unexpected crashes come back as the same JSON error shape as
:class:`api.errors.ApiError`, so clients parse one format.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from frontdesk.storage.database import is_storage_outage, lost_a_race

log = structlog.get_logger("frontdesk.http")

REQUESTS = Counter(
    "frontdesk_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "frontdesk_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
)

_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
# Accepted webhook deliveries come at the providers' rate (thousands a
# second in a burst), and each payload gets its own "webhook.processed"
# line when it is processed: their access lines are DEBUG.  Refusals stay INFO.
_WEBHOOKS = "/webhooks/"
_access = logging.getLogger("frontdesk.http")

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# aiohttp's status codes mapped to the stable codes our clients switch on.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


# (method, route, status) -> its request counter, (route) -> its latency histogram:
# labels() validates and locks on every call, and a webhook burst calls it thousands of times a second.
_counters: dict[tuple[str, str, str], Any] = {}
_histograms: dict[str, Any] = {}


def _count(method: str, route: str, status: int, elapsed: float) -> None:
    key = (method, route, str(status))
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = REQUESTS.labels(*key)
    counter.inc()
    histogram = _histograms.get(route)
    if histogram is None:
        histogram = _histograms[route] = LATENCY.labels(route)
    histogram.observe(elapsed)


def _access_level(route: str, status: int) -> int:
    if status < 300 and (route in _PROBES or route.startswith(_WEBHOOKS)):
        return logging.DEBUG
    return logging.INFO


def _route_template(request: web.Request) -> str:
    """The matched route's template (``/api/v1/tickets/{id}``), so metric labels stay few."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


def _error_body(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def request_context_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outermost: binds the request id for every log line, logs and counts the answer."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_template(request)
        _count(request.method, route, status, elapsed)
        # The query string is left out: it may carry search terms about customers.
        # Successful probes and scrapes arrive every few seconds: keep them out of INFO.
        level = _access_level(route, status)
        if _access.isEnabledFor(level):  # structlog would build the whole line before the level drops it
            log.log(level, "http.request", method=request.method, path=request.path, route=route,
                     status=status, duration_ms=round(elapsed * 1000, 1), peer=request.remote)
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
async def json_errors_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Turn aiohttp's HTTP errors and unexpected crashes into JSON error bodies."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _HTTP_CODES.get(error.status, "http_error")
        response = _error_body(error.status, code, error.reason)
        if error.status == 405 and "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception as error:  # noqa: BLE001 - the last line of defence for one request
        if is_storage_outage(error) or lost_a_race(error):  # a lost race: the client retries it
            log.warning("http.storage_unavailable", error=type(error).__name__)
            response = _error_body(503, "storage_unavailable", "storage is unavailable, retry later")
            response.headers["Retry-After"] = "30"
            return response
        log.exception("http.unhandled_error")
        return _error_body(500, "internal_error", "internal error")
