"""Operators and their audit log: roles kept in Firestore (``operators/{email}``, managed by the
admin CLI), and one entry per view of personal data or action (``audit/{id}``, kept
``retention.audit_log``: 1 year, then swept; Firestore TTL on ``expire_at`` as a safety net)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.domain import operators as rules
from webmeeting.domain import retention as policy
from webmeeting.errors import Forbidden, InvalidRequest, NotFound

AUDIT_PAGE = 100  # entries an admin sees per page


def role_of(email: str) -> rules.Role | None:
    """The role kept for a verified address, or None (no role: no access at all)."""
    address = rules.normalize_email(email)
    if address is None:
        return None
    role = fs.data(fs.operators().document(address).get()).get("role")
    try:
        return rules.Role(role) if role else None
    except ValueError:
        return None


def operator_for(email: str, via: str = "console") -> rules.Operator:
    """The caller as an operator, or ``Forbidden`` (an address with no role learns nothing more)."""
    role = role_of(email)
    address = rules.normalize_email(email)
    if role is None or address is None:
        raise Forbidden("no access")
    return rules.Operator(address, role, via)


def record(operator: rules.Operator, action: rules.Action, target: str, records: Iterable[str] = (), outcome: str = "ok") -> None:
    """One audit entry (written before what it records is shown)."""
    now = runtime.clock().now()
    entry = rules.audit_entry(operator, action, target, list(records), now, outcome)
    duration = policy.durations(dict(runtime.backends().retention_s))["audit_log"]
    fs.audit().document(secrets.token_hex(16)).set({**entry, "expire_at": now + duration})


def authorize(operator: rules.Operator, action: rules.Action, target: str) -> None:
    """``Forbidden`` unless the operator's role allows ``action``; a refusal is audited too."""
    if not rules.allowed(operator.role, action):
        record(operator, action, target, outcome="refused")
        raise Forbidden(f"the {operator.role} role may not do this")


# --- managing operators (admin CLI) ---------------------------------------------------------------


def set_role(by: rules.Operator, email: str, role: rules.Role) -> str:
    authorize(by, rules.Action.MANAGE_OPERATORS, "operators")
    address = rules.normalize_email(email)
    if address is None:
        raise InvalidRequest("not an email address")
    fs.operators().document(address).set({"role": str(role), "updated_at": runtime.clock().now(), "by": by.email})
    record(by, rules.Action.MANAGE_OPERATORS, f"operator:{address}", outcome=f"role {role}")
    return address


def remove(by: rules.Operator, email: str) -> None:
    authorize(by, rules.Action.MANAGE_OPERATORS, "operators")
    address = rules.normalize_email(email)
    if address is None or not fs.operators().document(address).get().exists:
        raise NotFound("no such operator")
    fs.operators().document(address).delete()
    record(by, rules.Action.MANAGE_OPERATORS, f"operator:{address}", outcome="removed")


def listing(by: rules.Operator) -> list[dict[str, Any]]:
    authorize(by, rules.Action.MANAGE_OPERATORS, "operators")
    record(by, rules.Action.MANAGE_OPERATORS, "operators", outcome="listed")
    return [{"email": s.id, **fs.data(s)} for s in fs.operators().stream()]


# --- reading the log ---------------------------------------------------------------------------------


def _entry(snap: Any) -> dict[str, Any]:
    d = fs.data(snap)
    return {"id": snap.id, **{k: v for k, v in d.items() if k != "expire_at"}}


def recent(by: rules.Operator, before: datetime | None = None, limit: int = AUDIT_PAGE) -> list[dict[str, Any]]:
    """The newest entries (admins only); viewing the log is itself an entry."""
    authorize(by, rules.Action.VIEW_AUDIT, "audit")
    record(by, rules.Action.VIEW_AUDIT, "audit")
    filters = [("at", "<", before)] if before else []
    q = fs.query(fs.audit(), *filters, order_by="at", descending=True, limit=limit)
    return [_entry(s) for s in q.stream()]


def naming(records: list[str]) -> list[dict[str, Any]]:
    """Entries that name any of ``records`` (a privacy export's: the subject's own records)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(records), 30):
        chunk = records[start : start + 30]
        for snap in fs.query(fs.audit(), ("records", "array_contains_any", chunk)).stream():
            found[snap.id] = _entry(snap)
    return sorted(found.values(), key=lambda e: e["at"])
