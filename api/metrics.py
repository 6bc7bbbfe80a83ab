"""Prometheus exposition of the default registry at ``/metrics``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

routes = web.RouteTableDef()

OPENAPI: dict[str, Any] = {
    "paths": {
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "operationId": "getMetrics",
                "tags": ["operations"],
                "security": [],
                "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        }
    }
}


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    # CONTENT_TYPE_LATEST carries parameters (version, charset) aiohttp's
    # content_type setter refuses, so set the header itself.
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
