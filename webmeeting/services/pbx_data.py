"""Deleting a PBX with everything that hangs on it (unbind, retention, manual deletion), or only
its meeting data (the portal's per-meeting data: DNS failing for 14 days)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from google.cloud import firestore

from webmeeting.adapters import firestore as fs


def _where(collection: Any, field: str, value: Any) -> Any:
    return collection.where(filter=firestore.FieldFilter(field, "==", value)).stream()


PURGE_LOST_AFTER = timedelta(minutes=5)  # a purge marker this old lost its task: the sweep runs it


def purges() -> firestore.CollectionReference:
    """Markers of deleted meetings whose remains are yet to go: written in the deleting
    transaction, removed by the purge task (``run_purge``) once everything is gone."""
    return fs.client().collection("meeting_purges")


def run_purge(meeting_key: str) -> str:
    """What a deleted meeting left (session, events, recordings, files, poll runs, delivered
    mails; undelivered mails such as its cancellations go out first and leave by their own rule).
    Idempotent: a retried task finds less, then nothing."""
    ref = purges().document(meeting_key)
    if not ref.get().exists:
        return "done"
    writer = fs.Writer()
    purge_meeting(meeting_key, writer, keep_meeting=True, keep_undelivered_mail=True)
    writer.delete(ref)
    writer.commit()
    return "purged"


def lost_purges(now: datetime) -> list[str]:
    query = purges().where(filter=firestore.FieldFilter("at", "<", now - PURGE_LOST_AFTER))
    return [snap.id for snap in query.stream()]


def purge_meeting(
    meeting_key: str, writer: fs.Writer, *, keep_meeting: bool = False, keep_undelivered_mail: bool = False
) -> None:
    """One meeting and all that hangs on it: documents, shared PDFs and files (objects first),
    its session, participant events, recordings (and their objects), mails, poll runs.
    ``keep_meeting``: only what hangs on it (a Quick Meeting is its extension's, synced data).
    ``keep_undelivered_mail``: pending mails stay (a cancellation on its way)."""
    from webmeeting import runtime
    from webmeeting.adapters import storage
    from webmeeting.services.files import delete_meeting_pdfs, delete_session_files

    delete_meeting_pdfs(meeting_key)
    delete_session_files(meeting_key)
    s = runtime.settings()
    client = fs.client()
    for rec in _where(client.collection("recordings"), "meeting_key", meeting_key):
        d = fs.data(rec)
        if d.get("output_object"):
            storage.delete(s.recordings_bucket, d["output_object"])
        for track in d.get("tracks", []):
            storage.delete(s.raw_bucket, track["object"])
        writer.delete(rec.reference)
    for col in ("participant_events", "mails"):
        for snap in _where(client.collection(col), "meeting_key", meeting_key):
            if col == "mails" and keep_undelivered_mail and fs.data(snap).get("status") in ("pending", "sending"):
                continue
            writer.delete(snap.reference)
    for run in _where(client.collection("poll_runs"), "meeting_key", meeting_key):
        client.recursive_delete(run.reference)
    writer.delete(client.collection("sessions").document(meeting_key))
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
    for poll in _where(fs.client().collection("polls"), "pbx_id", pbx_id):
        for run in _where(fs.client().collection("poll_runs"), "poll_id", poll.id):
            fs.client().recursive_delete(run.reference)
        writer.delete(poll.reference)
    for col in (fs.reports(), fs.vanity_links(), fs.nonces(), fs.client().collection("mails")):
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
