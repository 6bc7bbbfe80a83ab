"""Normalize: a configuration file brought to exactly the shape export produces, defaults filled in, or refused."""

from __future__ import annotations

from typing import Any

from frontdesk.model.access import ROLES, TICKET_ACCESS
from frontdesk.model.automation import SEND_EMAIL, TO_TEAM, TO_USER
from frontdesk.model.channels import CHANNEL_KINDS
from frontdesk.model.inboxes import HELP_DESK
from frontdesk.runtime.config.document import FORMAT_VERSION, SECTIONS, ConfigApplyError
from frontdesk.runtime.config.sla import normalize_sla
from frontdesk.tickets.automation_settings import ACTION_KINDS, RECIPIENT_KINDS
from frontdesk.tickets.pipelines import valid_internal_name


def _need(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or mapping.get(key) in (None, ""):
        raise ConfigApplyError("field_required", f"{where}: {key!r} is required")
    return mapping[key]


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigApplyError("field_invalid", f"{where} must be a list")
    return value


def _unique(items: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ConfigApplyError("duplicate_name", f"{what} {item!r} appears twice")
        seen.add(item)


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """The file in exactly the shape :func:`export_config` produces, with defaults filled in."""
    if raw.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ConfigApplyError("version_unsupported", f"this Frontdesk reads format version {FORMAT_VERSION}")
    unknown = set(raw) - set(SECTIONS) - {"version"}
    if unknown:
        raise ConfigApplyError("unknown_section", f"unknown top-level keys: {', '.join(sorted(unknown))}")
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    doc["teams"] = sorted(str(t) for t in _list(raw.get("teams"), "teams"))
    _unique(doc["teams"], "team")
    doc["users"] = []
    for u in _list(raw.get("users"), "users"):
        email = str(_need(u, "email", "user")).lower()
        role = u.get("role", "agent")
        access = u.get("ticket_access", "all")
        if role not in ROLES:
            raise ConfigApplyError("role_invalid", f"user {email}: role must be one of {', '.join(ROLES)}")
        if access not in TICKET_ACCESS:
            raise ConfigApplyError("ticket_access_invalid", f"user {email}: ticket_access is one of {TICKET_ACCESS}")
        primary = u.get("primary_team")
        doc["users"].append({
            "email": email, "name": str(u.get("name") or email.split("@")[0]), "role": role,
            "primary_team": primary,
            "teams": sorted(t for t in set(_list(u.get("teams"), f"user {email} teams")) if t != primary),
            "ticket_access": access, "sees_unassigned": bool(u.get("sees_unassigned", False)),
            "can_manage_views": bool(u.get("can_manage_views", False)),
            "account_access": bool(u.get("account_access", False)),
        })
    doc["users"].sort(key=lambda u: u["email"])
    _unique([u["email"] for u in doc["users"]], "user")
    doc["properties"] = []
    for p in _list(raw.get("properties"), "properties"):
        name = _need(p, "name", "property")
        doc["properties"].append({
            "name": name, "label": p.get("label") or name, "type": _need(p, "type", f"property {name}"),
            "options": list(p.get("options") or []), "read_only": bool(p.get("read_only", False)),
            "calculated": bool(p.get("calculated", False)),
        })
    doc["properties"].sort(key=lambda p: p["name"])
    _unique([p["name"] for p in doc["properties"]], "property")
    doc["templates"] = []
    for t in _list(raw.get("templates"), "templates"):
        key = _need(t, "key", "template")
        doc["templates"].append({
            "key": key, "name": t.get("name") or key, "subject": _need(t, "subject", f"template {key}"),
            "body_text": _need(t, "body_text", f"template {key}"), "body_html": t.get("body_html") or "",
            "transactional": bool(t.get("transactional", True)),
        })
    doc["templates"].sort(key=lambda t: t["key"])
    _unique([t["key"] for t in doc["templates"]], "template")
    doc["pipelines"] = [_normalize_pipeline(p) for p in _list(raw.get("pipelines"), "pipelines")]
    _unique([p["internal_name"] for p in doc["pipelines"]], "pipeline")
    doc["channels"] = []
    for c in _list(raw.get("channels"), "channels"):
        kind = _need(c, "kind", "channel")
        if kind not in CHANNEL_KINDS:
            raise ConfigApplyError("channel_kind_invalid", f"channel kind must be one of {', '.join(CHANNEL_KINDS)}")
        key = str(_need(c, "key", "channel"))
        doc["channels"].append({"kind": kind, "key": key.lower() if kind == "email" else key,
                                "name": c.get("name") or key, "pipeline": _need(c, "pipeline", f"channel {key}"),
                                "create_tickets": bool(c.get("create_tickets", True)),
                                "enabled": bool(c.get("enabled", True))})
    doc["channels"].sort(key=lambda c: (c["kind"], c["key"]))
    doc["sla"] = normalize_sla(raw.get("sla"))
    doc["snippets"] = []
    for snippet in _list(raw.get("snippets"), "snippets"):
        shortcut = str(_need(snippet, "shortcut", "snippet"))
        doc["snippets"].append({"shortcut": shortcut, "name": str(snippet.get("name") or shortcut),
                                "body": str(_need(snippet, "body", f"snippet {shortcut}"))})
    doc["snippets"].sort(key=lambda s: s["shortcut"])
    _unique([s["shortcut"] for s in doc["snippets"]], "snippet")
    doc["views"] = []
    for v in _list(raw.get("views"), "views"):
        name = str(_need(v, "name", "view"))
        sharing = v.get("sharing", "everyone")
        if sharing not in ("teams", "everyone"):
            raise ConfigApplyError("view_sharing_invalid", f"view {name}: sharing is teams or everyone "
                                   "(private views are not configuration)")
        doc["views"].append({"name": name, "sharing": sharing,
                             "teams": sorted(_list(v.get("teams"), f"view {name} teams")) if sharing == "teams" else [],
                             "filters": [str(f) for f in _list(v.get("filters"), f"view {name} filters")],
                             "sort": str(v.get("sort") or "-updated_at"), "owner": v.get("owner")})
    doc["views"].sort(key=lambda v: v["name"])
    _unique([v["name"] for v in doc["views"]], "view")
    doc["inboxes"] = []
    for i in _list(raw.get("inboxes"), "inboxes"):
        key = str(_need(i, "key", "inbox"))
        if not valid_internal_name(key) or key == HELP_DESK:
            raise ConfigApplyError("internal_name_invalid", f"inbox {key!r}: keys are lowercase letters, digits, _ "
                                   f"(and {HELP_DESK!r}, the help desk, is always there)")
        doc["inboxes"].append({"key": key, "name": str(i.get("name") or key)})
    doc["inboxes"].sort(key=lambda i: i["key"])
    _unique([i["key"] for i in doc["inboxes"]], "inbox")
    _unique([i["name"].lower() for i in doc["inboxes"]], "inbox name")
    return doc


def _normalize_pipeline(p: Any) -> dict[str, Any]:
    name = _need(p, "internal_name", "pipeline")
    where = f"pipeline {name}"
    if not valid_internal_name(name):
        raise ConfigApplyError("internal_name_invalid", f"{where}: internal names are lowercase letters, digits, _")
    access = p.get("access") or {}
    automation = p.get("automation") or {}
    statuses = []
    for s in _list(p.get("statuses"), f"{where} statuses"):
        internal = _need(s, "internal_name", f"{where} status")
        if not valid_internal_name(internal):
            raise ConfigApplyError("internal_name_invalid", f"{where} status {internal!r}: not a valid internal name")
        state = s.get("state", "open")
        if state not in ("open", "closed"):
            raise ConfigApplyError("field_invalid", f"{where} status {internal}: state is open or closed")
        statuses.append({
            "internal_name": internal, "label": s.get("label") or internal, "state": state,
            "properties": [
                {"property": e, "required": False} if isinstance(e, str)
                else {"property": _need(e, "property", f"{where} status {internal} property"),
                      "required": bool(e.get("required", False))}
                for e in _list(s.get("properties"), f"{where} status {internal} properties")
            ],
            "actions": [_normalize_action(a, f"{where} status {internal}")
                        for a in _list(s.get("actions"), f"{where} status {internal} actions")],
        })
    _unique([s["internal_name"] for s in statuses], f"{where} status")

    def trigger(key: str) -> dict[str, Any]:
        spec = automation.get(key) or {}
        return {"enabled": bool(spec.get("enabled", True)), "status": spec.get("status")}

    return {
        "internal_name": name,
        "name": p.get("name") or name,
        "access": {"users": sorted(str(u).lower() for u in _list(access.get("users"), f"{where} access users")),
                   "teams": sorted(_list(access.get("teams"), f"{where} access teams"))},
        "automation": {"email_sent": trigger("email_sent"), "customer_replied": trigger("customer_replied"),
                       "action_sources": sorted(_list(automation.get("action_sources"), f"{where} action_sources"))},
        "statuses": statuses,
    }


def _normalize_action(a: Any, where: str) -> dict[str, Any]:
    kind = _need(a, "kind", f"{where} action")
    if kind not in ACTION_KINDS:
        raise ConfigApplyError("action_kind_invalid", f"{where}: action kind is one of {', '.join(ACTION_KINDS)}")
    entry: dict[str, Any] = {"kind": kind}
    if kind == SEND_EMAIL:
        entry["template"] = _need(a, "template", f"{where} send_email action")
    else:
        recipient = _need(a, "recipient", f"{where} notify action")
        rkind = recipient.get("kind") if isinstance(recipient, dict) else None
        if rkind not in RECIPIENT_KINDS:
            raise ConfigApplyError("action_recipient_invalid",
                                   f"{where}: recipient kind is one of {', '.join(RECIPIENT_KINDS)}")
        entry["recipient"] = {"kind": rkind}
        if rkind == TO_USER:
            entry["recipient"]["user"] = str(_need(recipient, "user", f"{where} recipient")).lower()
        elif rkind == TO_TEAM:
            entry["recipient"]["team"] = _need(recipient, "team", f"{where} recipient")
    entry["comment"] = a.get("comment") or None
    return entry
