"""What operators can see and do: one set of operations behind the console and the admin CLI.

Every operation takes the ``Operator`` asking, checks the role (``domain.operators.PERMISSIONS``),
writes its audit entry before it returns anything, and shows personal data as that role may see
it: support redacted (``A**** L******``, ``a****@e******.com``, ``203.0.x.x``), admins in full
where the policy allows; meeting reports stay redacted for everybody until they are sanitized.
Meeting keys are links (credentials): support sees only their first characters in listings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage, tasks
from webmeeting.domain import operators as rules
from webmeeting.domain.operators import Action, Operator, Shown
from webmeeting.errors import Conflict, InvalidRequest, NotFound
from webmeeting.services import licenses as lic_svc
from webmeeting.services import mcus as mcu_svc
from webmeeting.services import operators as audit
from webmeeting.services import pbx_data, privacy
from webmeeting.services import recordings as rec_svc
from webmeeting.services import reports as rep_svc

T = TypeVar("T")
LINK_TTL = timedelta(minutes=10)  # an admin's signed recording link
LISTED = 200  # rows a listing shows at most
KEY_SHOWN = 6  # characters of a meeting key support sees in listings


def _key_label(op: Operator, key: str) -> str:
    return key if op.sees_identities else key[:KEY_SHOWN] + "…"


def _allow(op: Operator, action: Action, target: str) -> None:
    audit.authorize(op, action, target)


# --- PBXs and licenses ------------------------------------------------------------------------------


def pbxs(op: Operator) -> list[dict[str, Any]]:
    _allow(op, Action.VIEW_PBXS, "pbxs")
    shown = Shown(op)
    rows = []
    for snap in list(fs.pbxs().limit(LISTED).stream()):
        d = fs.data(snap)
        rows.append(
            {
                "id": snap.id,
                "pbx_fqdn": d.get("pbx_fqdn"),
                "license_key": d.get("license_key"),
                "ip": shown.ip(d.get("ip")),
                "last_sync_at": d.get("last_sync_at"),
                "last_contact_at": d.get("last_contact_at"),
                "dns_failing_since": d.get("dns_failing_since"),
                "mcu_id": d.get("mcu_id"),
            }
        )
    rows.sort(key=lambda r: str(r["pbx_fqdn"]))
    audit.record(op, Action.VIEW_PBXS, "pbxs", [f"pbx:{r['id']}" for r in rows][:30])
    return rows


def pbx(op: Operator, pbx_id: str) -> dict[str, Any]:
    """One PBX: its sync data, DNS streak, default MCU, and what is held and when it expires."""
    _allow(op, Action.VIEW_PBX, f"pbx:{pbx_id}")
    snap = fs.pbxs().document(pbx_id).get()
    if not snap.exists:
        raise NotFound(f"no PBX {pbx_id}")
    d = fs.data(snap)
    now = runtime.clock().now()
    audit.record(op, Action.VIEW_PBX, f"pbx:{pbx_id}", [f"pbx:{pbx_id}"])
    failing = d.get("dns_failing_since")
    return {
        "id": pbx_id,
        "pbx_fqdn": d.get("pbx_fqdn"),
        "webmeeting_fqdn": d.get("webmeeting_fqdn"),
        "license_key": d.get("license_key"),
        "ip": Shown(op).ip(d.get("ip")),
        "country": d.get("country"),
        "version": d.get("pbx_version"),
        "activated_at": d.get("activated_at"),
        "last_sync_at": d.get("last_sync_at"),
        "last_contact_at": d.get("last_contact_at"),
        "dns_failing_since": failing,
        "dns_streak_days": (now - failing).days if failing else 0,
        "dns_failures": d.get("dns_failures", 0),
        "mcu_id": d.get("mcu_id"),
        "extensions": sum(1 for _ in fs.extensions(pbx_id).list_documents()),
        "held": privacy.retention_report(pbx_id, now),
    }


def licenses(op: Operator) -> list[dict[str, Any]]:
    _allow(op, Action.VIEW_LICENSES, "licenses")
    now = runtime.clock().now()
    rows = [
        {
            "key": lic.key,
            "edition": lic.edition,
            "expires_at": lic.expires_at,
            "max_participants": lic.max_participants,
            "recording": lic.recording,
            "state": "revoked" if lic.revoked else ("expired" if lic.expires_at <= now else "valid"),
            "bound_fqdn": lic.bound_fqdn,
            "bound_pbx_id": lic.bound_pbx_id,
        }
        for lic in lic_svc.list_licenses()[:LISTED]
    ]
    audit.record(op, Action.VIEW_LICENSES, "licenses")
    return rows


# --- MCUs and meetings: the troubleshooting signalling data -------------------------------------------


def _participants(op: Operator, meeting_key: str, session_id: str | None) -> list[dict[str, Any]]:
    """Who was in a session, from the MCUs' participant events: name, IP, role, joins and
    reconnects, whether connected now (names and IPs as the role may see them)."""
    shown = Shown(op)
    people: dict[str, dict[str, Any]] = {}
    events = [fs.data(s) for s in fs.query(fs.participant_events(), ("meeting_key", "==", meeting_key)).stream()]
    for e in sorted(events, key=lambda e: e["at"]):
        if session_id is not None and e.get("session_id") != session_id:
            continue
        p = people.setdefault(
            e["participant_id"],
            {"participant": e["participant_id"][:8], "events": [], "reconnects": 0, "connected": False},
        )
        if e.get("name"):
            p["name"] = shown.name(e.get("name"))
        if e.get("ip"):
            p["ip"] = shown.ip(e.get("ip"))
        p["role"] = e.get("role") or p.get("role")
        p["reconnects"] += 1 if e["type"] == "reconnected" else 0
        p["connected"] = e["type"] != "left"
        p["events"].append({"type": e["type"], "at": e["at"], "mcu_id": e.get("mcu_id"), "reason": e.get("reason")})
    return list(people.values())


def mcus(op: Operator) -> list[dict[str, Any]]:
    """Each MCU's state and load, its live meetings and who is in them."""
    _allow(op, Action.VIEW_MCUS, "mcus")
    counts = mcu_svc.assigned_pbx_counts()
    out, records = [], []
    for m in sorted(mcu_svc.all_mcus(), key=lambda m: m.id):
        live = []
        for snap in fs.query(fs.sessions(), ("on_mcus", "array_contains", m.id)).stream():
            s = fs.data(snap)
            if not s.get("count"):
                continue
            records.append(rules.meeting_ref(snap.id))
            live.append(
                {
                    "meeting": _key_label(op, snap.id),
                    "meeting_key": snap.id if op.sees_identities else None,
                    "count": s.get("count", 0),
                    "started_at": s.get("started_at"),
                    "participants": [p for p in _participants(op, snap.id, s.get("session_id")) if p["connected"]],
                }
            )
        out.append(
            {
                "id": m.id,
                "region": m.region,
                "status": m.status,
                "load": m.load,
                "capacity": m.capacity,
                "pbxs": counts.get(m.id, 0),
                "url": m.url,
                "live": live,
            }
        )
    audit.record(op, Action.VIEW_MCUS, "mcus", records)
    return out


def meeting(op: Operator, key: str) -> dict[str, Any]:
    """A meeting by its key: the meeting, its session, participants with their connection
    events, its recordings and reports."""
    ref = rules.meeting_ref(key)
    _allow(op, Action.VIEW_MEETING, ref)
    snap = fs.meetings().document(key).get() if 16 <= len(key) <= 64 else None
    if snap is None or not snap.exists:
        audit.record(op, Action.VIEW_MEETING, ref, [ref], outcome="not found")
        raise NotFound("no meeting with this key")
    d = fs.data(snap)
    shown = Shown(op)
    session = fs.data(fs.sessions().document(key).get())
    pbx = fs.data(fs.pbxs().document(d["pbx_id"]).get())
    recs = [{"id": r.id, **_recording_row(fs.data(r))} for r in fs.query(fs.recordings(), ("meeting_key", "==", key)).stream()]
    audit.record(op, Action.VIEW_MEETING, ref, [ref, f"pbx:{d['pbx_id']}"] + [f"recording:{r['id']}" for r in recs])
    return {
        "meeting_key": key,
        "pbx_id": d["pbx_id"],
        "pbx_fqdn": pbx.get("pbx_fqdn"),
        "kind": d.get("kind"),
        "name": shown.name(d.get("name")),
        "organizer": d.get("organizer"),
        "scheduled_start": d.get("scheduled_start"),
        "duration_minutes": d.get("duration_minutes"),
        "invited": [{"name": shown.name(p.get("name")), "email": shown.email(p.get("email"))} for p in d.get("participants", [])],
        "session": {
            "session_id": session.get("session_id"),
            "count": session.get("count", 0),
            "mcu_id": session.get("mcu_id"),
            "started_at": session.get("started_at"),
            "ended_at": session.get("ended_at"),
            "dialin": (session.get("dialin") or {}).get("status"),
        }
        if session
        else None,
        "participants": _participants(op, key, None),
        "recordings": recs,
    }


# --- recordings and reports ---------------------------------------------------------------------------


def _recording_row(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": d.get("status"),
        "converter": d.get("dispatched_to"),
        "attempts": d.get("attempts", 0),
        "created_at": d.get("created_at"),
        "size": d.get("size"),
        "error": (d.get("error") or "")[:200] or None,
        "pbx_id": d.get("pbx_id"),
    }


def _pbx_of(fqdn: str, license_key: str) -> str | None:
    if fqdn:
        return fs.data(fs.fqdns().document(fqdn.strip().lower()).get()).get("pbx_id") if len(fqdn) <= 253 else None
    if license_key:
        return fs.data(fs.licenses().document(license_key.strip()).get()).get("bound_pbx_id") if len(license_key) <= 64 else None
    return None


def recordings(
    op: Operator, *, meeting_key: str = "", fqdn: str = "", license_key: str = "", status: str = ""
) -> list[dict[str, Any]]:
    """Recordings of one meeting (its key), or of the PBX owning them (its FQDN or license key):
    a support request names one of these (policy); or all in one state (``status``: the CLI's
    watch on failed conversions)."""
    if not (meeting_key or fqdn or license_key or status):
        raise InvalidRequest("give a meeting key, a PBX FQDN or a license key")
    target = (
        rules.meeting_ref(meeting_key)
        if meeting_key
        else f"pbx-of:{fqdn or license_key}"
        if fqdn or license_key
        else f"status:{status}"
    )
    _allow(op, Action.VIEW_RECORDINGS, target)
    if status and not (meeting_key or fqdn or license_key):
        query = fs.query(fs.recordings(), ("status", "==", status))
    elif meeting_key:
        query = fs.query(fs.recordings(), ("meeting_key", "==", meeting_key))
    else:
        pbx_id = _pbx_of(fqdn, license_key)
        if pbx_id is None:
            audit.record(op, Action.VIEW_RECORDINGS, target, outcome="not found")
            return []
        target = f"pbx:{pbx_id}"
        query = fs.query(fs.recordings(), ("pbx_id", "==", pbx_id))
    rows = []
    for snap in list(query.limit(LISTED).stream()):
        d = fs.data(snap)
        rows.append({"id": snap.id, "meeting": _key_label(op, d.get("meeting_key") or ""), **_recording_row(d)})
    audit.record(op, Action.VIEW_RECORDINGS, target, [target] + [f"recording:{r['id']}" for r in rows])
    return rows


def recording_link(op: Operator, recording_id: str) -> str:
    """A short-lived signed link to a ready recording's MP4 (admins only)."""
    target = f"recording:{recording_id}"
    _allow(op, Action.RECORDING_LINK, target)
    snap = fs.recordings().document(recording_id).get() if len(recording_id) <= 64 else None
    d = fs.data(snap) if snap is not None else {}
    if not d:
        raise NotFound("no such recording")
    if d.get("status") != "ready" or not d.get("output_object"):
        raise Conflict("the recording is not converted yet")
    records = [target, f"pbx:{d.get('pbx_id')}"] + ([rules.meeting_ref(d["meeting_key"])] if d.get("meeting_key") else [])
    audit.record(op, Action.RECORDING_LINK, target, records)
    return storage.signed_url(runtime.settings().recordings_bucket, d["output_object"], LINK_TTL)


def reports(op: Operator, pbx_id: str = "") -> list[dict[str, Any]]:
    """Meeting reports: redacted for every role until sanitized (then the data is gone)."""
    target = f"pbx:{pbx_id}" if pbx_id else "reports"
    _allow(op, Action.VIEW_REPORTS, target)
    rows = list(rep_svc.for_admin(pbx_id or None, 50))
    audit.record(op, Action.VIEW_REPORTS, target, [f"report:{r['id']}" for r in rows][:29] + [target])
    return rows


# --- converters -------------------------------------------------------------------------------------


def converters(op: Operator) -> dict[str, Any]:
    _allow(op, Action.VIEW_CONVERTERS, "converters")
    s = runtime.settings()
    fallback = fs.data(rec_svc.config().get()).get("fallback")
    rows = [
        {"id": c.id, "region": c.region, "available": c.available, "fallback": c.id == fallback}
        for c in rec_svc.available_converters(s)
    ]
    audit.record(op, Action.VIEW_CONVERTERS, "converters")
    return {"converters": rows, "fallback": fallback}


def set_fallback(op: Operator, converter_id: str | None) -> None:
    target = f"converter:{converter_id or 'none'}"
    _allow(op, Action.CONVERTER_FALLBACK, target)
    rec_svc.set_fallback(converter_id, runtime.settings())
    audit.record(op, Action.CONVERTER_FALLBACK, target)


def set_available(op: Operator, converter_id: str, available: bool) -> None:
    target = f"converter:{converter_id}"
    _allow(op, Action.CONVERTER_AVAILABILITY, target)
    rec_svc.set_available(converter_id, available, runtime.settings())
    audit.record(op, Action.CONVERTER_AVAILABILITY, target, outcome="enabled" if available else "disabled")


# --- privacy: export, erasure, manual deletion ----------------------------------------------------------


def _subject_records(export: dict[str, Any], email: str | None) -> list[str]:
    refs = [rules.meeting_ref(m["id"]) for m in export.get("meetings", [])]
    refs += [f"report:{r['id']}" for r in export.get("reports", [])]
    refs += [f"recording:{r['id']}" for r in export.get("recordings", [])]
    if "pbx" in export:
        refs.append(f"pbx:{export['pbx']['id']}")
    refs += [f"pbx:{x['pbx_id']}" for x in export.get("extensions", []) if "pbx_id" in x]
    if email:
        refs.append(rules.subject_ref(runtime.settings().secret_key, email))
    return sorted(set(refs))


def export_subject(op: Operator, *, email: str = "", pbx_id: str = "") -> dict[str, Any]:
    """Everything held about an address or a PBX, with the audit entries that name its records."""
    if bool(email) == bool(pbx_id):
        raise InvalidRequest("give an email address or a PBX")
    address = rules.normalize_email(email) if email else None
    if email and address is None:
        raise InvalidRequest("not an email address")
    target = rules.subject_ref(runtime.settings().secret_key, address) if address else f"pbx:{pbx_id}"
    _allow(op, Action.PRIVACY_EXPORT, target)
    export = privacy.export_email(address) if address else privacy.export_pbx(pbx_id)
    records = _subject_records(export, address)
    export["audit"] = audit.naming(records)
    audit.record(op, Action.PRIVACY_EXPORT, target, records)
    return export


def erase_subject(op: Operator, email: str) -> dict[str, Any]:
    address = rules.normalize_email(email)
    if address is None:
        raise InvalidRequest("not an email address")
    target = rules.subject_ref(runtime.settings().secret_key, address)
    _allow(op, Action.PRIVACY_ERASE, target)
    records = _subject_records(privacy.export_email(address), address)
    audit.record(op, Action.PRIVACY_ERASE, target, records)
    return privacy.erase_email(address)


def audited(op: Operator, action: Action, target: str, run: Callable[[], T], records: list[str] | None = None) -> T:
    """An action the operations above do not name (the CLI's license, MCU and retry commands):
    checked against the role and audited the same way."""
    _allow(op, action, target)
    result = run()
    audit.record(op, action, target, records or [target])
    return result


PBX_DELETE_TASK = "/tasks/v1/pbx-delete"


def delete_pbx(op: Operator, pbx_id: str, *, queue: bool) -> str:
    """Manual deletion of a PBX and everything held about it. ``queue``: by the tasks function
    (the console: its account only reads Storage), else here and now (the CLI)."""
    target = f"pbx:{pbx_id}"
    _allow(op, Action.PBX_DELETE, target)
    if not fs.pbxs().document(pbx_id).get().exists:
        raise NotFound(f"no PBX {pbx_id}")
    audit.record(op, Action.PBX_DELETE, target, [target], outcome="queued" if queue else "deleted")
    if queue:
        s = runtime.settings()
        tasks.enqueue(s.project, "pbx", f"{s.tasks_url}{PBX_DELETE_TASK}", {"pbx_id": pbx_id})
        return "queued"
    pbx_data.purge_pbx(pbx_id)
    return "deleted"
