"""Every admin endpoint is described in its module's OpenAPI fragment and served in /openapi.json."""

import importlib

import pytest

ADMIN_MODULES = ("frontdesk.api.users", "frontdesk.api.pipelines", "frontdesk.api.audit", "frontdesk.api.properties", "frontdesk.api.automation_settings",
                 "frontdesk.api.templates", "frontdesk.api.ticket_create", "frontdesk.api.bulk_move")


@pytest.mark.parametrize("name", ADMIN_MODULES)
def test_every_route_is_in_the_fragment(name):
    module = importlib.import_module(name)
    paths = module.OPENAPI["paths"]
    for route in module.routes:
        assert route.method.lower() in paths.get(route.path, {}), (name, route.method, route.path)


async def test_served_document_has_the_admin_paths(api):
    document = await api.ok("GET", "/openapi.json", token="")
    for path in ("/api/v1/pipelines/{pipeline_id}/statuses/{status_id}", "/api/v1/statuses/{status_id}/properties",
                 "/api/v1/audit", "/api/v1/tickets/bulk-move", "/api/v1/templates/{key}/preview"):
        assert path in document["paths"], path
    assert "post" in document["paths"]["/api/v1/tickets"] and "get" in document["paths"]["/api/v1/tickets"]
