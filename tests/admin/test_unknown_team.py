"""An unknown team on a user is a 422 naming it, not a foreign-key error (found by the API fuzzer)."""

from admin_client import make_user


async def test_an_unknown_primary_team_is_refused_on_create_and_update(api):
    for body in ({"name": "Bo", "email": "bo@acme.test", "role": "agent", "primary_team_id": 4413},):
        code, answer = await api.post("/api/v1/users", body)
        assert code == 422 and answer["error"]["code"] == "unknown_team" and answer["error"]["team_ids"] == [4413]
    user_id, _ = await make_user(api, "cy@acme.test")
    code, answer = await api.patch(f"/api/v1/users/{user_id}", {"primary_team_id": 4413})
    assert code == 422 and answer["error"]["code"] == "unknown_team"
    # Nothing was half-written: the user is unchanged and the API still answers writes.
    _, listed = await api.get("/api/v1/users")
    [user] = [u for u in listed["users"] if u["id"] == user_id]
    assert user["primary_team_id"] is None
    code, team = await api.post("/api/v1/teams", {"name": "Field"})
    assert code == 201, team


async def test_changing_a_users_email_to_one_taken_is_409_every_time(api):
    """Found by the API fuzzer: the second attempt was a 500 (the failed UPDATE had broken the transaction)."""
    await make_user(api, "di@acme.test")
    user_id, _ = await make_user(api, "ed@acme.test")
    for _ in range(2):
        code, answer = await api.patch(f"/api/v1/users/{user_id}", {"email": "di@acme.test"})
        assert (code, answer["error"]["code"]) == (409, "email_taken")
    code, _ = await api.patch(f"/api/v1/users/{user_id}", {"email": "ed2@acme.test"})
    assert code == 200
