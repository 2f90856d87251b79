"""Deleting a PBX with everything that hangs on it (unbind, retention, manual deletion), or only
its meeting data (the portal's per-meeting data: DNS failing for 14 days)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage, tasks
from webmeeting.services import files
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.pbx_data")


def _where(collection: Any, field: str, value: Any) -> Any:
    """Every document of ``collection`` whose ``field`` equals ``value``."""
    return fs.query(collection, (field, "==", value)).stream()


PURGE_LOST_AFTER = timedelta(minutes=5)  # a purge marker this old lost its task: the sweep runs it


def run_purge(meeting_key: str) -> str:
    """What a deleted meeting left (session, events, recordings, files, poll runs, delivered
    mails; undelivered mails such as its cancellations go out first and leave by their own rule).
    Idempotent: a retried task finds less, then nothing."""
    ref = fs.meeting_purges().document(meeting_key)
    if not ref.get().exists:
        return "done"
    writer = fs.Writer()
    purge_meeting(meeting_key, writer, keep_meeting=True, keep_undelivered_mail=True)
    writer.delete(ref)
    writer.commit()
    return "purged"


def lost_purges(now: datetime) -> list[str]:
    query = fs.query(fs.meeting_purges(), ("at", "<", now - PURGE_LOST_AFTER))
    return [snap.id for snap in query.stream()]


def purge_meeting(
    meeting_key: str, writer: fs.Writer, *, keep_meeting: bool = False, keep_undelivered_mail: bool = False
) -> None:
    """One meeting and all that hangs on it: documents, shared PDFs and files (objects first),
    its session, participant events, recordings (and their objects), mails, poll runs.
    ``keep_meeting``: only what hangs on it (a Quick Meeting is its extension's, synced data).
    ``keep_undelivered_mail``: pending mails stay (a cancellation on its way)."""
    files.delete_meeting_pdfs(meeting_key)
    files.delete_session_files(meeting_key)
    s = runtime.settings()
    for rec in _where(fs.recordings(), "meeting_key", meeting_key):
        delete_recording_objects(fs.data(rec), s)
        writer.delete(rec.reference)
    for snap in _where(fs.participant_events(), "meeting_key", meeting_key):
        writer.delete(snap.reference)
    for snap in _where(fs.mails(), "meeting_key", meeting_key):
        if not (keep_undelivered_mail and fs.data(snap).get("status") in ("pending", "sending")):
            writer.delete(snap.reference)
    for run in _where(fs.poll_runs(), "meeting_key", meeting_key):
        fs.recursive_delete(run.reference)
    writer.delete(fs.sessions().document(meeting_key))
    if keep_meeting:
        return
    meeting = fs.data(fs.meetings().document(meeting_key).get())
    if meeting.get("vanity_link"):
        writer.delete(fs.vanity_links().document(meeting["vanity_link"]))
    writer.delete(fs.meetings().document(meeting_key))


def purge_meetings(pbx_id: str, *, everything: bool = False) -> int:
    """The PBX's meeting data: scheduled meetings with what hangs on them, and what hangs on its
    Quick Meetings (which stay with their extensions, unless ``everything``)."""
    writer = fs.Writer()
    count = 0
    for meeting in _where(fs.meetings(), "pbx_id", pbx_id):
        purge_meeting(meeting.id, writer, keep_meeting=not everything and fs.data(meeting).get("kind") == "quick")
        count += 1
    writer.commit()
    return count


def purge_pbx(pbx_id: str) -> int:
    """Delete the PBX with everything: its meetings (and all that hangs on them), polls, reports,
    mails, vanity links, nonces, extensions and manifest, its FQDN binding (the license stays in
    the registry, unbound). Idempotent. Returns the number of PBX-level documents deleted."""
    purge_meetings(pbx_id, everything=True)
    writer = fs.Writer()
    for poll in _where(fs.polls(), "pbx_id", pbx_id):
        for run in _where(fs.poll_runs(), "poll_id", poll.id):
            fs.recursive_delete(run.reference)
        writer.delete(poll.reference)
    for col in (fs.reports(), fs.vanity_links(), fs.nonces(), fs.mails()):
        for snap in _where(col, "pbx_id", pbx_id):
            writer.delete(snap.reference)
    for sub in (fs.extensions(pbx_id), fs.manifest(pbx_id)):
        for snap in sub.stream():
            writer.delete(snap.reference)
    pbx = fs.data(fs.pbxs().document(pbx_id).get())
    fqdn = pbx.get("pbx_fqdn")
    if fqdn:
        binding = fs.data(fs.fqdns().document(fqdn).get())
        if binding.get("pbx_id") == pbx_id:
            writer.delete(fs.fqdns().document(fqdn))
    if pbx.get("license_key"):
        lic = fs.data(fs.licenses().document(pbx["license_key"]).get())
        if lic.get("bound_pbx_id") == pbx_id:
            writer.update(fs.licenses().document(pbx["license_key"]), {"bound_fqdn": None, "bound_pbx_id": None})
    writer.delete(fs.pbxs().document(pbx_id))
    count = len(writer)
    writer.commit()
    return count


def delete_recording_objects(rec: dict[str, Any], settings: Settings, *, raw_only: bool = False) -> None:
    """A recording's objects in Storage: the MP4 (unless ``raw_only``) and the raw tracks.
    Called before its record is deleted, so an interrupted deletion finds the record again."""
    if rec.get("output_object") and not raw_only:
        storage.delete(settings.recordings_bucket, rec["output_object"])
    for track in rec.get("tracks", []):
        storage.delete(settings.raw_bucket, track["object"])


def enqueue_purge(settings: Settings, meeting_key: str) -> None:
    """Queue the purge of a deleted meeting's remains; a lost task is found by the sweep."""
    try:
        tasks.enqueue(settings.project, "pbx", f"{settings.tasks_url}/tasks/v1/meeting-purge", {"meeting_key": meeting_key})
    except Exception:  # noqa: BLE001 - the marker stays; sessions-sweep queues it again
        log.exception("could not enqueue a meeting purge")


def listing() -> list[dict[str, Any]]:
    """The activated PBXs as operators see them (no secrets), by FQDN."""
    fields = ("pbx_fqdn", "license_key", "last_sync_at", "last_contact_at", "mcu_id", "country")
    rows = [{"id": snap.id, **{f: fs.data(snap).get(f) for f in fields}} for snap in fs.pbxs().stream()]
    return sorted(rows, key=lambda r: str(r["pbx_fqdn"]))
