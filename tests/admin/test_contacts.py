"""Contacts and companies API: create, read, update, list with cursors, search, and the rules they obey."""

from admin_client import make_user


async def test_contacts_create_read_update_and_their_rules(api):
    _, agent = await make_user(api, "agent@acme.test")
    company = await api.ok("POST", "/api/v1/companies", {"name": "Client Ltd", "domain": "Client.TEST"},
                           token=agent, expect=201)
    assert company["domain"] == "client.test"
    kim = await api.ok("POST", "/api/v1/contacts", {
        "email": " Kim.Lee@Client.test ", "first_name": "Kim", "last_name": "Lee", "phone": "+44 20 7946 0018",
        "mobile_phone": "07700 900123", "company_id": company["id"]}, token=agent, expect=201)
    assert kim["email"] == "kim.lee@client.test" and kim["mobile_phone"] == "07700 900123"
    assert await api.ok("GET", f"/api/v1/contacts/{kim['id']}", token=agent) == kim

    # One contact per address, whatever its case.
    code, error = await api.post("/api/v1/contacts", {"email": "KIM.LEE@client.test"}, token=agent)
    assert code == 409 and error["error"]["code"] == "contact_email_taken" and error["error"]["contact_id"] == kim["id"]
    other = await api.ok("POST", "/api/v1/contacts", {"first_name": "Ola"}, token=agent, expect=201)
    code, error = await api.patch(f"/api/v1/contacts/{other['id']}", {"email": "kim.lee@CLIENT.test"}, token=agent)
    assert code == 409 and error["error"]["code"] == "contact_email_taken"

    # Header-bound values stay on one line; a contact needs something to tell it by.
    for body, field in (({"email": "a@b.test\r\nBcc: x@evil.test"}, "email"),
                        ({"email": "Kim <kim@client.test>"}, "email"),
                        ({"first_name": "Kim\nBcc: x@evil.test"}, "first_name"),
                        ({"email": "x@y.test", "company_id": 999999}, "company_id"),
                        ({"phone": None}, "email")):
        code, error = await api.post("/api/v1/contacts", body, token=agent)
        assert code == 422 and error["error"]["field"] == field, (body, error)
    code, error = await api.post("/api/v1/contacts", {"email": "x@y.test", "nickname": "x"}, token=agent)
    assert code == 422 and error["error"]["code"] == "unknown_fields"
    async with api.http.post(api.base + "/api/v1/contacts", data=b'{"first_name": "\\ud800"}',
                             headers={"Authorization": f"Bearer {agent}", "Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"

    changed = await api.ok("PATCH", f"/api/v1/contacts/{kim['id']}", {"phone": None, "last_name": "Lee-Park",
                                                                      "company_id": None}, token=agent)
    assert changed["phone"] is None and changed["last_name"] == "Lee-Park" and changed["company_id"] is None
    assert changed["email"] == kim["email"] and changed["first_name"] == "Kim"
    code, _ = await api.get("/api/v1/contacts/999999", token=agent)
    assert code == 404
    code, _ = await api.get("/api/v1/contacts", token="")
    assert code == 401

    renamed = await api.ok("PATCH", f"/api/v1/companies/{company['id']}", {"name": "Client Group"}, token=agent)
    assert renamed["name"] == "Client Group" and renamed["domain"] == "client.test"
    code, error = await api.patch(f"/api/v1/companies/{company['id']}", {"name": None}, token=agent)
    assert code == 422 and error["error"]["field"] == "name"


async def test_lists_page_with_cursors_and_search(api):
    made = []
    for first, last, email, phone in (("Åsa", "Berg", "asa@nordic.test", "+46 8 123 456"),
                                      ("Kim", "Lee", "kim@client.test", None),
                                      ("Lee", "Marvin", "marvin@films.test", "555-0100"),
                                      ("Zed", None, "zed@zzz.test", None)):
        made.append(await api.ok("POST", "/api/v1/contacts", {"first_name": first, "last_name": last,
                                                              "email": email, "phone": phone}, expect=201))
    seen, cursor = [], None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await api.ok("GET", "/api/v1/contacts", params=params)
        seen += [c["id"] for c in page["contacts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["id"] for c in reversed(made)]

    async def found(q):
        return {c["email"] for c in (await api.ok("GET", "/api/v1/contacts", params={"q": q}))["contacts"]}

    assert await found("LEE") == {"kim@client.test", "marvin@films.test"}
    assert await found("kim lee") == {"kim@client.test"}
    assert await found("0100") == {"marvin@films.test"}
    assert await found("CLIENT.test") == {"kim@client.test"}
    assert await found("100%") == set()
    code, error = await api.get("/api/v1/contacts", params={"cursor": "bogus"})
    assert code == 400 and error["error"]["parameter"] == "cursor"
    for path in ("/api/v1/contacts", "/api/v1/companies", "/api/v1/tickets"):  # found by hand: a 500 on PostgreSQL
        code, error = await api.get(path, params={"q": "a\x00b"})
        assert code == 400 and error["error"]["parameter"] == "q", (path, error)

    await api.ok("POST", "/api/v1/companies", {"name": "Nordic Tools", "domain": "nordic.test"}, expect=201)
    await api.ok("POST", "/api/v1/companies", {"name": "Films Inc"}, expect=201)
    companies = await api.ok("GET", "/api/v1/companies", params={"q": "NORDIC"})
    assert [c["name"] for c in companies["companies"]] == ["Nordic Tools"]
