"""Meeting reports: made when a meeting session is over, mailed to the organizer, pushed to the
PBX until it acknowledges, listed by ``GET /reports`` until acked; sanitized later.

``finalize`` runs as a Cloud Task ``session_grace_s`` after the participant counter reached 0.
It is idempotent: the report's id derives from the meeting key and session id, and the report,
its mail (outbox) and the day's statistics are written in one transaction, so a retried task
neither duplicates a report nor counts a meeting twice. Delivery (the push, the mail) goes
through tasks that claim their work in a transaction and retry with backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from webmeeting import crypto, runtime
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import pbx_http, tasks
from webmeeting.domain import attendance
from webmeeting.domain import reports as rules
from webmeeting.domain.api import Report
from webmeeting.domain.people import display_name
from webmeeting.services import invitations, statistics
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.reports")

QUEUE = "pbx"
PUSH_LEASE = timedelta(seconds=60)
PUSHING = fs.Lease(busy="pushing", duration=PUSH_LEASE, prefix="push.")
PUSH_GIVE_UP_AFTER = timedelta(days=14)  # a PBX silent this long keeps the report for GET /reports only
RETENTION = timedelta(days=365)  # the production safety net (TTL): historical data at most a year


def report_id(meeting_key: str, session_id: str) -> str:
    """Stable per session (a retried finalize finds its report); unguessable (the meeting key is)."""
    return hashlib.sha256(f"report|{meeting_key}|{session_id}".encode()).hexdigest()[:32]


def _events(session_id: str) -> list[attendance.Event]:
    out = []
    for snap in fs.query(fs.participant_events(), ("session_id", "==", session_id)).stream():
        d = fs.data(snap)
        out.append(
            attendance.Event(
                snap.id, d["type"], d["participant_id"], d["mcu_id"], d["at"], d.get("name"), d.get("role"), d.get("reason")
            )
        )
    return out


def _dead_mcu_cutoffs() -> dict[str, datetime]:
    """Last heartbeat of every MCU that is no longer alive (open connections end there)."""
    stale = timedelta(seconds=runtime.settings().mcu_stale_s)
    wall = runtime.clock().wall()
    out = {}
    for snap in fs.mcus().stream():
        last = fs.data(snap).get("last_heartbeat_at")
        if last is not None and wall - last > stale:
            out[snap.id] = last
    return out


def finalize(meeting_key: str, session_id: str, settings: Settings, now: datetime) -> str:
    """Make the session's report if the session is over. Returns running | waiting | made |
    exists | no_meeting | empty."""
    session = fs.data(fs.sessions().document(meeting_key).get())
    current = session.get("session_id") == session_id
    if current and int(session.get("count", 0)) > 0:
        return "running"  # people came back: a later end schedules another finalize
    grace = timedelta(seconds=settings.session_grace_s)
    if current and session.get("ended_at") and runtime.clock().wall() < session["ended_at"] + grace:
        return "waiting"  # emptied again since this task was scheduled: that end's task decides
    rid = report_id(meeting_key, session_id)
    ref = fs.reports().document(rid)
    existing = ref.get()
    if existing.exists:
        _enqueue_delivery(settings, rid, fs.data(existing))
        return "exists"
    meeting = fs.data(fs.meetings().document(meeting_key).get())
    if not meeting:
        _mark_finalized(meeting_key, session_id)
        return "no_meeting"  # deleted meanwhile: with it went everything about it
    evs = _events(session_id)
    end = session.get("ended_at") if current else max((e.at for e in evs), default=None)
    att = attendance.compute(evs, cutoffs=_dead_mcu_cutoffs(), end=end)
    if not att.people or att.started_at is None:
        _mark_finalized(meeting_key, session_id)
        return "empty"
    extension = fs.data(fs.extensions(meeting["pbx_id"]).document(meeting["organizer"]).get())
    organizer_name = display_name(extension, meeting["organizer"])
    organizer_email = extension.get("email")
    invitees = [rules.Invitee(p.get("name") or "", p.get("email") or "") for p in meeting.get("participants", [])]
    built = rules.build(
        att,
        pbx_meeting_id=meeting.get("pbx_meeting_id") or f"quick-{meeting['organizer']}",
        meeting_name=meeting.get("name") or "Quick Meeting",
        organizer_name=organizer_name,
        organizer_email=organizer_email,
        invitees=invitees,
    )
    region = _region(session.get("mcu_id") if current else None, evs)
    doc = {
        "pbx_id": meeting["pbx_id"],
        "meeting_key": meeting_key,
        "session_id": session_id,
        "status": "pending",
        "created_at": now,
        "region": region,
        **built,
        "emails": sorted({p["email"].lower() for p in built["report"]["participants"] if p.get("email")}),  # data-subject queries
        "push": {"status": "pending", "attempts": 0},
        "sanitized": 0,
        "expire_at": now + RETENTION,
    }
    mail_ids: list[str] = []

    def run(tx: fs.Transaction) -> bool:
        if ref.get(transaction=tx).exists:
            return False
        s_ref = fs.sessions().document(meeting_key)
        s_now = fs.data(s_ref.get(transaction=tx))
        if s_now.get("session_id") == session_id and int(s_now.get("count", 0)) == 0:
            tx.update(s_ref, {"finalized": True})
        tx.create(ref, doc)
        if organizer_email:
            mail_id = invitations.report_mail(tx, rid, organizer_email, organizer_name, meeting["pbx_id"], now)
            mail_ids.append(mail_id)
        statistics.add_meeting(tx, built["report"], region)
        return True

    if not fs.transactional(run):
        return "exists"
    invitations.enqueue(settings.project, settings.tasks_url, mail_ids)
    _enqueue_push(settings, rid)
    return "made"


def _region(mcu_id: str | None, evs: list[attendance.Event]) -> str:
    mcu_id = mcu_id or (evs[0].mcu_id if evs else None)
    if mcu_id:
        region = fs.data(fs.mcus().document(mcu_id).get()).get("region")
        if region:
            return str(region)
    return "unknown"


def _mark_finalized(meeting_key: str, session_id: str) -> None:
    def run(tx: fs.Transaction) -> None:
        ref = fs.sessions().document(meeting_key)
        d = fs.data(ref.get(transaction=tx))
        if d.get("session_id") == session_id and int(d.get("count", 0)) == 0:
            tx.update(ref, {"finalized": True})

    fs.transactional(run)


def enqueue_finalize(settings: Settings, meeting_key: str, session_id: str) -> None:
    at = runtime.clock().wall() + timedelta(seconds=settings.session_grace_s)
    try:
        tasks.enqueue(
            settings.project,
            QUEUE,
            f"{settings.tasks_url}/tasks/v1/report",
            {"meeting_key": meeting_key, "session_id": session_id},
            at=at,
        )
    except Exception:  # noqa: BLE001 - the scheduler's sweep finalizes sessions left ended
        log.exception("could not enqueue the report of a session")


def _enqueue_push(settings: Settings, rid: str, at: datetime | None = None, attempt: int = 1) -> None:
    try:
        tasks.enqueue(
            settings.project, QUEUE, f"{settings.tasks_url}/tasks/v1/report-push", {"report_id": rid, "attempt": attempt}, at=at
        )
    except Exception:  # noqa: BLE001 - stays pending; the sweep re-enqueues it
        log.exception("could not enqueue the push of report %s", rid)


def _enqueue_delivery(settings: Settings, rid: str, doc: dict[str, Any]) -> None:
    """A retried finalize: make sure what the first run committed also got its tasks."""
    if doc.get("push", {}).get("status") == "pending":
        _enqueue_push(settings, rid)
    pending = fs.query(fs.mails(), ("report_id", "==", rid)).stream()
    invitations.enqueue(settings.project, settings.tasks_url, [s.id for s in pending if fs.data(s).get("status") == "pending"])


# --- the push to the PBX ----------------------------------------------------------------------


def contract_body(rid: str, doc: dict[str, Any]) -> bytes:
    report = Report.model_validate(doc["report"] | {"id": rid})
    return json.dumps(report.model_dump(mode="json"), separators=(",", ":")).encode()


def push(rid: str, attempt: int, settings: Settings, now: datetime) -> str:
    """POST the report to its PBX; returns delivered | retry_scheduled | gave_up | unknown |
    pushing | delivered (already)."""
    ref = fs.reports().document(rid)
    claimed = fs.claim(ref, PUSHING, runtime.clock().wall())
    if isinstance(claimed, str):
        return claimed
    doc = claimed
    pbx = fs.data(fs.pbxs().document(doc["pbx_id"]).get())
    if not pbx:
        ref.update({"push.status": "gave_up", "push.last_error": "the PBX is gone"})
        return "gave_up"
    try:
        secret = crypto.decrypt_secret(settings.secret_key, doc["pbx_id"], pbx["secret_enc"])
        pbx_http.call("POST", pbx["pbx_fqdn"], "/webmeeting/v1/reports", doc["pbx_id"], secret, contract_body(rid, doc))
    except pbx_http.PbxUnreachable as exc:
        if now - doc["created_at"] > PUSH_GIVE_UP_AFTER:
            ref.update({"push.status": "gave_up", "push.attempts": attempt, "push.last_error": str(exc)[:200]})
            log.warning("report %s: PBX %s silent for %s; left for GET /reports", rid, doc["pbx_id"], PUSH_GIVE_UP_AFTER)
            return "gave_up"
        ref.update({"push.status": "pending", "push.attempts": attempt, "push.last_error": str(exc)[:200]})
        _enqueue_push(settings, rid, at=runtime.clock().wall() + tasks.backoff(attempt), attempt=attempt + 1)
        return "retry_scheduled"
    ref.update({"push.status": "delivered", "push.attempts": attempt, "push.delivered_at": now, "push.last_error": None})
    return "delivered"


# --- sanitizing (run by the retention engine) ----------------------------------------------------


def sanitize_due(created_before: datetime, stage: int, batch: int = 200) -> int:
    """Sanitize every report created before ``created_before`` not yet at ``stage`` (1: the
    2-month pass, 2: the yearly one). Queries only what is due; returns how many changed."""
    done = 0
    while True:
        query = fs.query(fs.reports(), ("sanitized", "in", list(range(stage))), ("created_at", "<", created_before), limit=batch)
        snaps = list(query.stream())
        if not snaps:
            return done
        writer = fs.Writer()
        for snap in snaps:
            writer.update(snap.reference, sanitized_fields(fs.data(snap), stage))
        writer.commit()
        done += len(snaps)


def sanitized_fields(doc: dict[str, Any], stage: int) -> dict[str, Any]:
    report = rules.sanitize(doc["report"])
    fields: dict[str, Any] = {"report": report, "sanitized": stage, "emails": []}
    if stage >= 2:  # the yearly pass also drops what ties it to one meeting
        fields.update({"meeting_key": None, "session_id": None, "report": report | {"pbx_meeting_id": None}})
    return fields


def for_admin(pbx_id: str | None = None, limit: int = 50) -> Iterator[dict[str, Any]]:
    """Reports as support staff see them: personal data partially redacted until sanitized."""
    query = (
        fs.query(fs.reports(), ("pbx_id", "==", pbx_id), order_by="created_at", descending=True, limit=limit)
        if pbx_id
        else fs.query(fs.reports(), order_by="created_at", descending=True, limit=limit)
    )
    for snap in query.stream():
        d = fs.data(snap)
        report = d["report"] if d.get("sanitized") else rules.redacted(d["report"])
        yield {
            "id": snap.id,
            "pbx_id": d["pbx_id"],
            "status": d["status"],
            "push": d.get("push", {}).get("status"),
            "sanitized": d.get("sanitized", 0),
            "created_at": d["created_at"],
            **report,
        }
