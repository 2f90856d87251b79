"""Invitation mails: a transactional outbox in Firestore, delivered by Cloud Tasks.

A meeting change writes its planned mails (``mails/{id}``, status ``pending``) in the same
transaction as the meeting; after the commit each gets a task. The task handler sends the mail
unless it was already sent (a task delivered twice sends once) and, when the SMTP server is
unreachable, schedules its own retry with backoff (the mail is never dropped), giving up only
after ``GIVE_UP_AFTER``. Sent mails keep no personal data; the record expires after 7 days.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from webmeeting import mail as composer
from webmeeting import runtime, tokens
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import smtp, storage, tasks
from webmeeting.domain.invitations import plan_mails
from webmeeting.domain.people import display_name
from webmeeting.errors import NotFound, RateLimited
from webmeeting.links import meeting_url
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.invitations")

QUEUE = "mail"
GIVE_UP_AFTER = timedelta(days=3)  # an undeliverable mail is marked failed (and logged) after this
RECORD_DAYS = 7  # how long a mail's (scrubbed) record stays


def snapshot(meeting_key: str, meeting: dict[str, Any], organizer_name: str, url: str, now: datetime) -> dict[str, Any]:
    """What a mail about this meeting shows (kept with the mail: a cancellation outlives the meeting)."""
    return {
        "name": meeting["name"],
        "comments": meeting.get("comments", ""),
        "start": meeting["scheduled_start"],
        "duration_minutes": meeting["duration_minutes"],
        "url": url,
        "organizer_name": organizer_name,
        "uid": composer.calendar_uid(meeting_key),
        "sequence": int(now.timestamp()),
        "stamp": now,
    }


def outbox(
    writer: fs.Writer,
    meeting_key: str,
    pbx_id: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    shown: dict[str, Any],
    now: datetime,
) -> list[str]:
    """Add the mails due for ``old`` -> ``new`` to ``writer``; returns their ids."""
    ids = []
    for planned in plan_mails(old, new):
        mail_id = secrets.token_hex(16)
        writer.set(
            fs.mails().document(mail_id),
            {
                "status": "pending",
                "kind": planned.kind,
                "email": planned.email,
                "name": planned.name,
                "meeting": shown,
                "meeting_key": meeting_key,
                "pbx_id": pbx_id,
                "created_at": now,
                "attempts": 0,
                "expire_at": now + timedelta(days=RECORD_DAYS),
            },
        )
        ids.append(mail_id)
    return ids


def enqueue(project: str, target: str, mail_ids: list[str], at: datetime | None = None, attempt: int = 1) -> None:
    for mail_id in mail_ids:
        try:
            tasks.enqueue(project, QUEUE, f"{target}/tasks/v1/mail", {"mail_id": mail_id, "attempt": attempt}, at=at)
        except Exception:  # noqa: BLE001 - the mail stays pending in the outbox; the sweep re-enqueues it
            log.exception("could not enqueue mail %s", mail_id)


def queue_mail(tx: fs.Transaction, kind: str, email: str, name: str, now: datetime, **fields: Any) -> str:
    """One mail into the outbox, in the caller's transaction (sent by its task after the commit).
    ``fields``: what the mail is composed from when it is sent (a report id, a recording id, ...)."""
    mail_id = secrets.token_hex(16)
    doc = {"status": "pending", "kind": kind, "email": email, "name": name, **fields}
    doc.update({"created_at": now, "attempts": 0, "expire_at": now + timedelta(days=RECORD_DAYS)})
    tx.create(fs.mails().document(mail_id), doc)
    return mail_id


def report_mail(tx: fs.Transaction, report_id: str, email: str, name: str, pbx_id: str, now: datetime) -> str:
    """The organizer's report mail, into the outbox in the report's own transaction."""
    return queue_mail(tx, "report", email, name, now, report_id=report_id, pbx_id=pbx_id)


def recording_mail(tx: fs.Transaction, recording_id: str, email: str, name: str, pbx_id: str, now: datetime) -> str:
    """The organizer's "your recording is ready" mail; the link is signed when it is sent."""
    return queue_mail(tx, "recording", email, name, now, recording_id=recording_id, pbx_id=pbx_id)


def ops_mail(tx: fs.Transaction, email: str, subject: str, text: str, now: datetime) -> str:
    """A note to the development team (no personal data in it)."""
    return queue_mail(tx, "ops", email, "webmeeting operations", now, subject=subject, text=text)


def _recording_message(data: dict[str, Any], mail_id: str) -> Any:
    rec = fs.data(fs.recordings().document(data["recording_id"]).get())
    if rec.get("status") != "ready":
        return None  # deleted (or its PBX's data) before the mail could go
    s = runtime.settings()
    expires = rec["created_at"] + timedelta(days=s.recording_days)
    ttl = expires - runtime.clock().now()
    if ttl.total_seconds() < 60:
        return None  # the recording is about to be deleted: a link would not work
    url = storage.signed_url(s.recordings_bucket, rec["output_object"], min(ttl, timedelta(days=7)))
    return composer.compose_recording(rec, url, expires, data["email"], data["name"], mail_id)


def _message(data: dict[str, Any], mail_id: str) -> Any:
    if data["kind"] == "recording":
        return _recording_message(data, mail_id)
    if data["kind"] == "ops":
        return composer.compose_plain(data["subject"], data["text"], data["email"], data["name"], mail_id)
    if data["kind"] == "report":
        report = fs.data(fs.reports().document(data["report_id"]).get())
        if not report or report.get("sanitized"):
            return None  # the report went (its PBX's data was deleted) or was sanitized: nothing to send
        return composer.compose_report(report["report"], report.get("timeline", []), data["email"], data["name"], mail_id)
    return composer.compose(data["kind"], data["meeting"], data["email"], data["name"], mail_id)


SEND_LEASE = timedelta(seconds=60)  # a claimed mail whose sender vanished can be claimed again after this
SENDING = fs.Lease(busy="sending", duration=SEND_LEASE)


def _claim(ref: Any, now: datetime) -> dict[str, Any] | str:
    """Take the mail for sending (a transaction: two deliveries of one task cannot both send)."""
    claimed = fs.claim(ref, SENDING, now)
    return "already_sent" if claimed == "sent" else claimed


def deliver(mail_id: str, attempt: int, project: str, target: str, now: datetime) -> str:
    """Send one mail; returns what happened: sent | already_sent | sending | retry_scheduled | failed | unknown."""
    ref = fs.mails().document(mail_id)
    claimed = _claim(ref, now)
    if isinstance(claimed, str):
        return claimed
    data = claimed
    message = _message(data, mail_id)
    if message is None:
        ref.update({"status": "dropped", "email": None, "name": None})
        return "dropped"
    try:
        smtp.send(message)
    except smtp.MailNotSent as exc:
        if now - data["created_at"] > GIVE_UP_AFTER:
            ref.update({"status": "failed", "error": str(exc)[:200], "email": None, "name": None, "meeting": None})
            log.error("mail %s undeliverable for %s: %s", mail_id, GIVE_UP_AFTER, exc)
            return "failed"
        ref.update({"status": "pending", "attempts": attempt, "last_error": str(exc)[:200]})
        enqueue(project, target, [mail_id], at=now + tasks.backoff(attempt), attempt=attempt + 1)
        return "retry_scheduled"
    ref.update(
        {"status": "sent", "sent_at": now, "email": None, "name": None, "meeting": None, "text": None, "attempts": attempt}
    )
    return "sent"


MEETING_INVITES_MAX = 50  # invitations sent from inside one meeting, ever
ORGANIZER_INVITES_PER_HOUR = 30  # invitations one organizer sends from inside meetings per hour
INVITE_WINDOW = timedelta(hours=1)


def invite_quota(
    used: int, window_start: datetime | None, sent_from_meeting: int, wanted: int, now: datetime
) -> tuple[int, datetime]:
    """(the organizer's count in the current window after sending ``wanted``, that window's
    start), or RateLimited when the meeting's or the organizer's bound would be passed."""
    if window_start is None or now - window_start >= INVITE_WINDOW:
        used, window_start = 0, now
    if sent_from_meeting + wanted > MEETING_INVITES_MAX:
        raise RateLimited(f"a meeting sends at most {MEETING_INVITES_MAX} invitations from inside it")
    if used + wanted > ORGANIZER_INVITES_PER_HOUR:
        raise RateLimited(f"at most {ORGANIZER_INVITES_PER_HOUR} invitations an hour; try again later")
    return used + wanted, window_start


def invite_from_meeting(claims: tokens.JoinClaims, people: list[dict[str, str]], settings: Settings, now: datetime) -> int:
    """The organizer invites people from inside the meeting: they join the meeting's
    participants and get an invitation (people already on the list get nothing). Bounded per
    meeting (``MEETING_INVITES_MAX``) and per organizer and hour (``ORGANIZER_INVITES_PER_HOUR``);
    over a bound nothing is sent or stored (429). Returns how many were invited."""
    claims.require_organizer("only the organizer invites people")
    meeting_key = claims.meeting_key
    ref = fs.meetings().document(meeting_key)

    def run(tx: fs.Transaction) -> list[str]:
        meeting = fs.data(ref.get(transaction=tx))
        if not meeting:
            raise NotFound("no such meeting")
        ext_ref = fs.extensions(meeting["pbx_id"]).document(meeting["organizer"])
        ext = fs.data(ext_ref.get(transaction=tx))
        organizer = display_name(ext)
        current = {
            "name": meeting.get("name") or f"{organizer}'s meeting",
            "comments": meeting.get("comments", ""),
            "scheduled_start": meeting.get("scheduled_start") or now.replace(microsecond=0),
            "duration_minutes": meeting.get("duration_minutes") or 60,
            "participants": list(meeting.get("participants") or []),
            "send_invitations": True,  # whoever is on the list already has what they need
        }
        known = {p["email"].lower() for p in current["participants"]}
        added = [p for p in people if p["email"].lower() not in known]
        used, window = invite_quota(
            int(ext.get("invites_used", 0)), ext.get("invites_window"), int(meeting.get("invites_sent", 0)), len(added), now
        )
        updated = {**current, "participants": current["participants"] + added}
        writer = fs.Writer()
        shown = snapshot(meeting_key, updated, organizer, meeting_url(settings, meeting_key), now)
        ids = outbox(writer, meeting_key, meeting["pbx_id"], current, updated, shown, now)
        writer.update(
            ref,
            {
                "participants": updated["participants"],
                # data-subject export and erasure find people by these
                "invitee_emails": sorted({p["email"].lower() for p in updated["participants"] if p.get("email")}),
                "updated_at": now,
                "invites_sent": int(meeting.get("invites_sent", 0)) + len(added),
            },
        )
        if ext:
            writer.update(ext_ref, {"invites_used": used, "invites_window": window})
        writer.apply(tx)
        return ids

    ids = fs.transactional(run)
    enqueue(settings.project, settings.tasks_url, ids)
    return len(ids)


STUCK_AFTER = timedelta(minutes=10)  # a pending mail this old lost its task (enqueue failed): queue it again


def sweep(project: str, target: str, now: datetime) -> int:
    """Mails left behind: pending long after creation (their task was never enqueued), or
    "sending" past the lease (the sender vanished). Queries pending/sending mails only."""
    requeued = []
    for status in ("pending", "sending"):
        for snap in fs.query(fs.mails(), ("status", "==", status)).stream():
            d = fs.data(snap)
            if (
                status == "pending"
                and d.get("created_at")
                and now - d["created_at"] > STUCK_AFTER
                or status == "sending"
                and d.get("lease_until")
                and d["lease_until"] < now
            ):
                requeued.append(snap.id)
    enqueue(project, target, requeued)
    return len(requeued)
