"""Deleting a PBX with everything that hangs on it (unbind, retention, manual deletion)."""

from __future__ import annotations

from google.cloud import firestore

from webmeeting.adapters import firestore as fs


def purge_pbx(pbx_id: str) -> int:
    """Delete the PBX document, its extensions and manifest, its meetings and their vanity
    links, and its reports. Idempotent. Returns the number of documents deleted."""
    writer = fs.Writer()
    for poll in fs.client().collection("polls").where(filter=firestore.FieldFilter("pbx_id", "==", pbx_id)).stream():
        for run in fs.client().collection("poll_runs").where(filter=firestore.FieldFilter("poll_id", "==", poll.id)).stream():
            fs.client().recursive_delete(run.reference)
        writer.delete(poll.reference)
    from webmeeting.services.files import delete_meeting_pdfs  # files imports sessions; keep this module light

    for meeting in fs.meetings().where(filter=firestore.FieldFilter("pbx_id", "==", pbx_id)).stream():
        delete_meeting_pdfs(meeting.id)
    for col in (fs.meetings(), fs.reports(), fs.vanity_links(), fs.nonces()):
        for snap in col.where(filter=firestore.FieldFilter("pbx_id", "==", pbx_id)).stream():
            writer.delete(snap.reference)
    for sub in (fs.extensions(pbx_id), fs.manifest(pbx_id)):
        for snap in sub.stream():
            writer.delete(snap.reference)
    writer.delete(fs.pbxs().document(pbx_id))
    count = len(writer)
    writer.commit()
    return count
