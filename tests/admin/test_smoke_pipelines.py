from admin_client import make_user, support_pipeline


async def test_pipeline_lifecycle(api):
    created = await api.ok("POST", "/api/v1/pipelines", {"name": "On-site service"}, expect=201)
    assert created["internal_name"] == "on_site_service"
    assert [s["state"] for s in created["statuses"]] == ["open", "closed"]
    support = await support_pipeline(api)
    assert support["statuses"][0]["internal_name"] == "new"
    uid, token = await make_user(api, "a@acme.test")
    status, body = await api.post("/api/v1/pipelines", {"name": "X"}, token=token)
    assert status == 403 and body["error"]["code"] == "edit_property_settings_required"
