"""Data-subject rights and the retention report: everything held about a PBX or an email
address (export as JSON), erasure on request, and when each item held expires."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.domain import retention as policy
from webmeeting.errors import NotFound
from webmeeting.services.pbx_data import purge_pbx

SECRET_FIELDS = {"secret_enc"}


def _all(q: Any) -> list[Any]:
    return list(q.stream())


def _doc(snap: Any) -> dict[str, Any]:
    return {"id": snap.id, **{k: v for k, v in fs.data(snap).items() if k not in SECRET_FIELDS}}


def export_pbx(pbx_id: str) -> dict[str, Any]:
    """Everything held about one PBX and its users (the API secret excepted)."""
    snap = fs.pbxs().document(pbx_id).get()
    if not snap.exists:
        raise NotFound(f"no PBX {pbx_id}")
    pbx = _doc(snap)
    meetings = _all(fs.query(fs.meetings(), ("pbx_id", "==", pbx_id)))
    keys = [m.id for m in meetings]
    per_meeting: dict[str, list[dict[str, Any]]] = {
        "sessions": [],
        "participant_events": [],
        "recordings": [],
        "files": [],
        "pdfs": [],
    }
    for key in keys:
        s = fs.sessions().document(key).get()
        if s.exists:
            per_meeting["sessions"].append(_doc(s))
        for name, col in (
            ("participant_events", fs.participant_events),
            ("recordings", fs.recordings),
            ("files", fs.files),
            ("pdfs", fs.pdfs),
        ):
            per_meeting[name] += [_doc(x) for x in _all(fs.query(col(), ("meeting_key", "==", key)))]
    return {
        "pbx": pbx,
        "fqdn_binding": fs.data(fs.fqdns().document(pbx.get("pbx_fqdn", "-")).get()),
        "extensions": [_doc(x) for x in fs.extensions(pbx_id).stream()],
        "meetings": [_doc(m) for m in meetings],
        **per_meeting,
        "polls": [_doc(x) for x in _all(fs.query(fs.polls(), ("pbx_id", "==", pbx_id)))],
        "reports": [_doc(x) for x in _all(fs.query(fs.reports(), ("pbx_id", "==", pbx_id)))],
        "mails": [_doc(x) for x in _all(fs.query(fs.mails(), ("pbx_id", "==", pbx_id)))],
    }


def export_email(email: str) -> dict[str, Any]:
    """Everything held about one email address: as a PBX user (extension), as an invitee, in
    meeting reports, in mails not yet sent."""
    email = email.strip().lower()
    extensions = [
        {"pbx_id": x.reference.parent.parent.id, **_doc(x)}
        for x in fs.query(fs.group("extensions"), ("email", "==", email)).stream()
    ]
    return {
        "email": email,
        "extensions": extensions,
        "meetings": [_doc(m) for m in _all(fs.query(fs.meetings(), ("invitee_emails", "array_contains", email)))],
        "reports": [_doc(r) for r in _all(fs.query(fs.reports(), ("emails", "array_contains", email)))],
        "mails": [_doc(m) for m in _all(fs.query(fs.mails(), ("email", "==", email)))],
    }


def erase_email(email: str) -> dict[str, Any]:
    """Remove an email address wherever the platform holds it on its own account: invitations,
    reports, unsent mails. An extension's email is the PBX's sync data: it is listed, to be
    erased on the PBX (the next sync then removes it here), or with the whole PBX."""
    email = email.strip().lower()
    found = export_email(email)
    writer = fs.Writer()
    for m in found["meetings"]:
        people = [{**p, "email": None} if (p.get("email") or "").lower() == email else p for p in m.get("participants", [])]
        writer.update(fs.meetings().document(m["id"]), {"participants": people, "invitee_emails": fs.array_remove([email])})
    for r in found["reports"]:
        report = dict(r["report"])
        report["participants"] = [
            {**p, "email": None} if (p.get("email") or "").lower() == email else p for p in report.get("participants", [])
        ]
        writer.update(fs.reports().document(r["id"]), {"report": report, "emails": fs.array_remove([email])})
    for mail in found["mails"]:
        writer.delete(fs.mails().document(mail["id"]))
    writer.commit()
    return {
        "meetings": len(found["meetings"]),
        "reports": len(found["reports"]),
        "mails": len(found["mails"]),
        "held_by_pbxs": [{"pbx_id": x["pbx_id"], "extension": x["id"]} for x in found["extensions"]],
    }


def delete_pbx(pbx_id: str) -> int:
    """Manual deletion (policy: "all the above data is deleted ... on manual deletion")."""
    if not fs.pbxs().document(pbx_id).get().exists:
        raise NotFound(f"no PBX {pbx_id}")
    return purge_pbx(pbx_id)


def retention_report(pbx_id: str, now: datetime) -> list[dict[str, Any]]:
    """What is held for a PBX and when each item expires (or on which condition)."""
    snap = fs.pbxs().document(pbx_id).get()
    if not snap.exists:
        raise NotFound(f"no PBX {pbx_id}")
    pbx = fs.data(snap)
    d = policy.durations(dict(runtime.backends().retention_s))
    rows: list[dict[str, Any]] = []
    until = pbx["last_contact_at"] + d["pbx_no_contact"]
    why = "no contact for 60 days"
    if pbx.get("dns_failing_since"):
        dns_until = pbx["dns_failing_since"] + d["pbx_dns"]
        if dns_until < until:
            until, why = dns_until, "DNS failing for 30 days"
    ext_count = sum(1 for _ in fs.extensions(pbx_id).list_documents())
    rows.append({"item": f"PBX sync data ({ext_count} extensions, FQDN, IP, license)", "expires": until, "rule": why})
    if pbx.get("dns_failing_since"):
        rows.append(
            {
                "item": "meeting data",
                "expires": pbx["dns_failing_since"] + d["pbx_dns_meetings"],
                "rule": "DNS failing for 14 days",
            }
        )
    for m in _all(fs.query(fs.meetings(), ("pbx_id", "==", pbx_id))):
        md = fs.data(m)
        if md.get("kind") != "scheduled":
            continue
        label = f"meeting {md.get('pbx_meeting_id')}"
        if not md.get("names_cleared"):
            rows.append(
                {
                    "item": f"{label}: name, comments, invitees' names",
                    "expires": md["scheduled_start"] + d["meeting_names"],
                    "rule": "meeting_names",
                }
            )
        if not md.get("emails_cleared"):
            rows.append(
                {
                    "item": f"{label}: invitees' emails",
                    "expires": md["ends_at"] + d["participant_emails"],
                    "rule": "participant_emails",
                }
            )
        for rec in _all(fs.query(fs.recordings(), ("meeting_key", "==", m.id))):
            rows.append(
                {
                    "item": f"{label}: recording {rec.id[:8]}",
                    "expires": fs.data(rec)["created_at"] + d["recordings"],
                    "rule": "recordings",
                }
            )
    for r in _all(fs.query(fs.reports(), ("pbx_id", "==", pbx_id))):
        rd = fs.data(r)
        stage = int(rd.get("sanitized", 0))
        if stage < 2:
            rule = "reports_sanitize" if stage == 0 else "reports_sanitize_yearly"
            rows.append({"item": f"report {r.id[:8]}: names and emails", "expires": rd["created_at"] + d[rule], "rule": rule})
    rows.sort(key=lambda row: row["expires"])
    for row in rows:
        row["in"] = row["expires"] - now if row["expires"] > now else timedelta(0)
    return rows
