"""Recordings: organizer starts/stops → the MCU writes raw tracks → uploads them and reports →
the portal picks a converter and starts it through Cloud Tasks → the converter job makes the MP4,
marks the recording ready (and queues the organizer's mail) → the raw files go.

``recordings/{id}`` moves through: recording → uploaded → converting → ready, with
``failed`` (retried with backoff; the development team told) in between. A converter holds a
lease it renews while it works; one that stops renewing (killed, crashed) is taken as failed by
the minute sweep, and the conversion is retried. Nothing is deleted before a conversion
succeeded; a rerun of any step finds the work done and does not repeat it.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime, tokens
from webmeeting.adapters import converter_runner, tasks
from webmeeting.adapters import firestore as fs
from webmeeting.domain import converters as conv
from webmeeting.domain.api import RecordingUploaded
from webmeeting.domain.licenses import license_problem
from webmeeting.domain.people import display_name
from webmeeting.errors import Conflict, Forbidden, InvalidRequest, LicenseInvalid, NotFound
from webmeeting.services import invitations
from webmeeting.services.licenses import load_license
from webmeeting.services.pbx_data import delete_recording_objects
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.recordings")

QUEUE = "pbx"
MAX_ATTEMPTS = 8  # then the recording stays failed (raw files kept until retention) and ops know


def config() -> fs.Document:
    """The admins' converter settings: a fallback converter, disabled converters."""
    return fs.config("converters")


def raw_deleted(rec_id: str, rec: dict[str, Any], settings: Settings) -> None:
    """A ready recording's raw tracks go (the MP4 stays until retention)."""
    delete_recording_objects(rec, settings, raw_only=True)
    fs.recordings().document(rec_id).update({"raw_deleted": True})


# --- start / stop (the organizer's page) ---------------------------------------------------------


def _grant(settings: Settings, meeting_key: str, rec_id: str, action: str, mcu_id: str) -> str:
    grant = tokens.RecordingGrant(meeting_key, rec_id, action, mcu_id)
    return tokens.issue_grant(settings.require("join_token_key"), grant, runtime.clock().wall())


def start(claims: tokens.JoinClaims, settings: Settings, now: datetime) -> dict[str, Any]:
    """Organizer only, license permitting, in a running session; a second start returns the
    recording already running. Returns {recording_id, grant} for the page to hand to the MCU."""
    claims.require_organizer("only the organizer records")
    meeting = fs.data(fs.meetings().document(claims.meeting_key).get())
    if not meeting:
        raise NotFound("no such meeting")
    pbx = fs.data(fs.pbxs().document(meeting["pbx_id"]).get())
    lic = load_license(pbx.get("license_key", ""))
    problem = license_problem(lic, now)
    if problem or lic is None:
        raise LicenseInvalid(f"this meeting's {problem or 'license unknown'}")
    if not lic.recording:
        raise Forbidden("this meeting's license does not include recording", code="recording_not_licensed")
    s_ref = fs.sessions().document(claims.meeting_key)

    def run(tx: fs.Transaction) -> str:
        session = fs.data(s_ref.get(transaction=tx))
        if int(session.get("count", 0)) == 0:
            raise Conflict("the meeting is not running")
        if session.get("recording_id"):
            return str(session["recording_id"])
        rec_id = secrets.token_hex(16)
        tx.create(
            fs.recordings().document(rec_id),
            {
                "status": "recording",
                "meeting_key": claims.meeting_key,
                "session_id": session["session_id"],
                "pbx_id": meeting["pbx_id"],
                "organizer": meeting["organizer"],
                "meeting_name": meeting.get("name") or "Quick Meeting",
                "mcu_id": claims.mcu_id,
                "created_at": now,
                "attempts": 0,
                "expire_at": now + timedelta(days=settings.recording_days),
            },
        )
        tx.update(s_ref, {"recording_id": rec_id})
        return rec_id

    rec_id = fs.transactional(run)
    return {"recording_id": rec_id, "grant": _grant(settings, claims.meeting_key, rec_id, "start", claims.mcu_id)}


def stop(claims: tokens.JoinClaims, settings: Settings) -> dict[str, Any]:
    claims.require_organizer("only the organizer records")
    s_ref = fs.sessions().document(claims.meeting_key)
    session = fs.data(s_ref.get())
    rec_id = session.get("recording_id")
    if not rec_id:
        raise Conflict("nothing is being recorded")
    s_ref.update({"recording_id": None})
    return {"recording_id": rec_id, "grant": _grant(settings, claims.meeting_key, rec_id, "stop", claims.mcu_id)}


# --- the MCU reports the raw tracks uploaded -----------------------------------------------------


def uploaded(mcu_id: str, report: RecordingUploaded, settings: Settings, now: datetime) -> str:
    """Idempotent: a repeated report (the MCU did not see our answer) changes nothing."""
    ref = fs.recordings().document(report.recording_id)

    def run(tx: fs.Transaction) -> str:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise NotFound("unknown recording")
        d = fs.data(snap)
        if d["meeting_key"] != report.meeting_key or d["mcu_id"] != mcu_id:
            raise InvalidRequest("this recording belongs to another meeting or MCU")
        if d["status"] != "recording":
            return "known"
        s_ref = fs.sessions().document(d["meeting_key"])
        session = fs.data(s_ref.get(transaction=tx))  # (every read before the first write)
        tx.update(
            ref,
            {
                "status": "uploaded",
                "started_at": report.started_at,
                "stopped_at": report.stopped_at,
                "tracks": [t.model_dump() for t in report.tracks],
                "uploaded_at": now,
            },
        )
        if session.get("recording_id") == report.recording_id:
            tx.update(s_ref, {"recording_id": None})  # the MCU stopped it (the room emptied)
        return "stored"

    outcome = fs.transactional(run)
    if outcome == "stored":
        dispatch(report.recording_id, settings, attempt=1)
    return outcome


# --- choosing a converter and starting it --------------------------------------------------------


def available_converters(settings: Settings) -> list[conv.Converter]:
    disabled = set(fs.data(config().get()).get("disabled", []))
    return [conv.Converter(c.id, c.region, c.id not in disabled) for c in conv.parse(settings.converters)]


def _region_of(mcu_id: str) -> str:
    return str(fs.data(fs.mcus().document(mcu_id).get()).get("region", ""))


def dispatch(rec_id: str, settings: Settings, *, attempt: int, failed: str | None = None, at: datetime | None = None) -> str:
    """Choose the converter and queue the conversion task; returns the converter's id."""
    d = fs.data(fs.recordings().document(rec_id).get())
    fallback = fs.data(config().get()).get("fallback")
    chosen = conv.choose(available_converters(settings), _region_of(d.get("mcu_id", "")), failed=failed, fallback=fallback)
    body = {"recording_id": rec_id, "converter": chosen.id, "attempt": attempt}
    try:
        tasks.enqueue(settings.project, QUEUE, f"{settings.tasks_url}/tasks/v1/convert", body, at=at)
    except Exception:  # noqa: BLE001 - the minute sweep dispatches what is left waiting
        log.exception("could not enqueue the conversion of %s", rec_id)
    return chosen.id


def start_conversion(rec_id: str, converter_id: str, attempt: int, settings: Settings, now: datetime) -> str:
    """The conversion task: start the converter job unless the recording is already done or
    being converted under a live lease."""
    ref = fs.recordings().document(rec_id)
    d = fs.data(ref.get())
    if not d:
        return "unknown"
    wall = runtime.clock().wall()
    if d["status"] in ("ready", "recording"):
        return str(d["status"])
    if d["status"] == "converting" and d.get("lease_until") and d["lease_until"] > wall:
        return "converting"
    by_id = {c.id: c for c in conv.parse(settings.converters)}
    if converter_id not in by_id:
        raise InvalidRequest(f"unknown converter {converter_id!r}")
    ref.update({"dispatched_to": converter_id, "dispatched_at": now, "attempt_planned": attempt})
    converter_runner.run(by_id[converter_id], rec_id, attempt, settings)
    return "started"


# --- the converter's side (converter_job) --------------------------------------------------------


def claim(rec_id: str, execution: str, settings: Settings) -> dict[str, Any] | str:
    """Take the recording for converting: its document, or why not (ready | converting | unknown)."""
    ref = fs.recordings().document(rec_id)
    wall = runtime.clock().wall()
    lease = fs.Lease(busy="converting", duration=timedelta(seconds=settings.convert_lease_s), claimable=("uploaded", "failed"))

    def extra(d: dict[str, Any]) -> dict[str, Any]:
        return {
            "execution": execution,
            "attempts": int(d.get("attempts", 0)) + 1,
            # chosen once: a rerun overwrites the same object, never adds one
            "output_object": d.get("output_object") or f"recordings/{secrets.token_hex(16)}.mp4",
            "converting_since": wall,
        }

    claimed = fs.claim(ref, lease, wall, extra=extra, mine=lambda d: d.get("execution") == execution)
    if claimed == "ready":
        return fs.data(ref.get())  # done before: the caller only cleans up
    return claimed


def renew(rec_id: str, execution: str, settings: Settings) -> bool:
    """Extend the lease while converting; False when it was taken away."""
    ref = fs.recordings().document(rec_id)
    wall = runtime.clock().wall()

    def run(tx: fs.Transaction) -> bool:
        d = fs.data(ref.get(transaction=tx))
        if d.get("status") != "converting" or d.get("execution") != execution:
            return False
        tx.update(ref, {"lease_until": wall + timedelta(seconds=settings.convert_lease_s)})
        return True

    ok: bool = fs.transactional(run)
    return ok


def mark_ready(rec_id: str, execution: str, size: int, duration_s: float, settings: Settings, now: datetime) -> bool:
    """The MP4 is in the recordings bucket: ready, and the organizer's mail into the outbox,
    in one transaction. False if another execution finished first."""
    ref = fs.recordings().document(rec_id)
    mail_ids: list[str] = []

    def run(tx: fs.Transaction) -> bool:
        d = fs.data(ref.get(transaction=tx))
        if d.get("status") == "ready":
            return False
        ext = fs.data(fs.extensions(d["pbx_id"]).document(d["organizer"]).get(transaction=tx))
        tx.update(
            ref,
            {
                "status": "ready",
                "ready_at": now,
                "size": size,
                "duration_s": duration_s,
                "lease_until": None,
                "error": None,
                "raw_deleted": False,  # the converter deletes them next; the sweep if it could not
            },
        )
        if ext.get("email"):
            name = display_name(ext, d["organizer"])
            mail_ids.append(invitations.recording_mail(tx, rec_id, ext["email"], name, d["pbx_id"], now))
        return True

    done: bool = fs.transactional(run)
    invitations.enqueue(settings.project, settings.tasks_url, mail_ids)
    return done


def mark_failed(rec_id: str, execution: str, reason: str, settings: Settings, now: datetime) -> str:
    """A conversion failed: recorded with the reason, the development team told, retried with
    backoff on the fallback converter (or another one). Returns retry_scheduled | gave_up | stale."""
    ref = fs.recordings().document(rec_id)
    mail_ids: list[str] = []

    def run(tx: fs.Transaction) -> dict[str, Any] | None:
        d = fs.data(ref.get(transaction=tx))
        if d.get("status") != "converting" or d.get("execution") != execution:
            return None
        tx.update(ref, {"status": "failed", "error": reason[:500], "failed_at": now, "lease_until": None})
        if settings.ops_email:
            subject = f"Recording conversion failed: {rec_id}"
            mail_ids.append(invitations.ops_mail(tx, settings.ops_email, subject, _ops_text(rec_id, d, reason), now))
        return d

    d = fs.transactional(run)
    if d is None:
        return "stale"
    log.error(
        "conversion of recording %s on %s failed (attempt %s): %s", rec_id, d.get("dispatched_to"), d.get("attempts"), reason
    )
    invitations.enqueue(settings.project, settings.tasks_url, mail_ids)
    attempts = int(d.get("attempts", 1))
    if attempts >= MAX_ATTEMPTS:
        log.error("recording %s: giving up after %d attempts; raw tracks kept", rec_id, attempts)
        return "gave_up"
    at = runtime.clock().wall() + tasks.backoff(attempts, base_s=5.0, cap_s=1800.0)
    dispatch(rec_id, settings, attempt=attempts + 1, failed=d.get("dispatched_to"), at=at)
    return "retry_scheduled"


def _ops_text(rec_id: str, d: dict[str, Any], reason: str) -> str:
    return (
        f"Recording {rec_id} failed to convert.\n"
        f"Converter: {d.get('dispatched_to')}\nAttempt: {d.get('attempts')}\nReason: {reason}\n\n"
        "It is retried with backoff. Retry on a chosen converter:\n"
        f"  python -m webmeeting.cli.admin recordings retry {rec_id} --converter ID\n"
    )


# --- the minute sweep, and admins ----------------------------------------------------------------


def sweep(settings: Settings, now: datetime) -> dict[str, int]:
    """Converters that stopped renewing their lease failed; uploaded recordings whose task was
    lost are dispatched again."""
    wall = runtime.clock().wall()
    failed = 0
    query = fs.query(fs.recordings(), ("status", "==", "converting"))
    for snap in query.stream():
        d = fs.data(snap)
        if d.get("lease_until") and d["lease_until"] < wall:
            failed += mark_failed(snap.id, d.get("execution", ""), "the converter stopped responding", settings, now) != "stale"
    redispatched = 0
    stuck = wall - timedelta(minutes=2)
    for snap in fs.query(fs.recordings(), ("status", "==", "uploaded")).stream():
        d = fs.data(snap)
        if (d.get("dispatched_at") or d.get("uploaded_at") or now) < stuck:
            dispatch(snap.id, settings, attempt=int(d.get("attempts", 0)) + 1)
            redispatched += 1
    cleaned = 0
    for snap in fs.query(fs.recordings(), ("raw_deleted", "==", False)).stream():
        d = fs.data(snap)
        if d.get("status") == "ready" and d.get("ready_at") and d["ready_at"] < now - timedelta(minutes=2):
            raw_deleted(snap.id, d, settings)
            cleaned += 1
    return {"conversions_failed": failed, "redispatched": redispatched, "raw_cleaned": cleaned}


def admin_retry(rec_id: str, converter_id: str | None, settings: Settings) -> str:
    d = fs.data(fs.recordings().document(rec_id).get())
    if not d:
        raise NotFound("unknown recording")
    if d["status"] not in ("failed", "uploaded"):
        raise Conflict(f"the recording is {d['status']}")
    if converter_id is None:
        return dispatch(rec_id, settings, attempt=int(d.get("attempts", 0)) + 1)
    if converter_id not in {c.id for c in conv.parse(settings.converters)}:
        raise InvalidRequest(f"unknown converter {converter_id!r}")
    tasks.enqueue(
        settings.project,
        QUEUE,
        f"{settings.tasks_url}/tasks/v1/convert",
        {"recording_id": rec_id, "converter": converter_id, "attempt": int(d.get("attempts", 0)) + 1},
    )
    return converter_id


def set_fallback(converter_id: str | None, settings: Settings) -> None:
    if converter_id is not None and converter_id not in {c.id for c in conv.parse(settings.converters)}:
        raise InvalidRequest(f"unknown converter {converter_id!r}")
    config().set({"fallback": converter_id}, merge=True)


def set_available(converter_id: str, available: bool, settings: Settings) -> None:
    if converter_id not in {c.id for c in conv.parse(settings.converters)}:
        raise InvalidRequest(f"unknown converter {converter_id!r}")
    op = fs.array_remove([converter_id]) if available else fs.array_union([converter_id])
    config().set({"disabled": op}, merge=True)
