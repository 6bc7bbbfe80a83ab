"""Changing a user's email to another user's is a 409 naming the address (a 500 before; found by the API fuzzer)."""

from admin_client import make_user


async def test_taking_another_users_email_is_409_and_changes_nothing(api):
    first, _ = await make_user(api, "ada@example.com")
    second, _ = await make_user(api, "bo@example.com")
    code, answer = await api.patch(f"/api/v1/users/{second}", {"email": "ada@example.com"})
    assert code == 409 and answer["error"]["code"] == "email_taken" and "ada@example.com" in answer["error"]["message"]
    _, listed = await api.get("/api/v1/users")
    assert {u["id"]: u["email"] for u in listed["users"]}[second] == "bo@example.com"
