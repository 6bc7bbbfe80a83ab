"""A super admin cannot take away their own role or deactivate themselves (the API fuzzer locked itself out so)."""

from admin_client import make_user


async def test_a_super_admin_cannot_demote_themselves_but_another_can(api):
    root_id, root = await make_user(api, "root@acme.test", role="super_admin")
    other_id, other = await make_user(api, "other@acme.test", role="super_admin")
    for change in ({"role": "agent"}, {"is_active": False}):
        code, answer = await api.patch(f"/api/v1/users/{root_id}", change, token=root)
        assert code == 422 and answer["error"]["code"] == "cannot_demote_self"
    code, answer = await api.patch(f"/api/v1/users/{root_id}", {"can_manage_views": True}, token=root)
    assert code == 200 and answer["role"] == "super_admin" and answer["can_manage_views"] is True
    code, answer = await api.patch(f"/api/v1/users/{root_id}", {"role": "agent"}, token=other)
    assert code == 200 and answer["role"] == "agent"
