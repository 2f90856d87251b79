"""File share: files live only as long as the meeting session they were shared in.

Stored in Storage under a random name (≥ 128 bits; the original name is never written to
Storage or a log), listed to the session's participants with short-lived signed URLs, deleted
when the session's participant counter reaches 0, and, on every upload, leftovers of sessions
that are no longer active are deleted too (the policy's extra check).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage
from webmeeting.domain.files import classify
from webmeeting.errors import Conflict, InvalidRequest, NotFound
from webmeeting.tokens import JoinClaims

log = logging.getLogger("webmeeting.files")

DOWNLOAD_URL_TTL = timedelta(minutes=5)
LEFTOVER_BATCH = 100  # leftovers examined per upload


def bucket_name() -> str:
    return runtime.settings().files_bucket


def max_bytes() -> int:
    return runtime.settings().file_max_bytes


def _active_session(meeting_key: str) -> str | None:
    session = fs.data(fs.sessions().document(meeting_key).get())
    return session.get("session_id") if session.get("count", 0) > 0 else None


def upload(claims: JoinClaims, ext: str, data: bytes, now: datetime) -> dict[str, Any]:
    """Share ``data`` (of type ``ext``: the only part of its name the portal ever receives)."""
    try:
        kind = classify(f"upload.{ext}", data, max_bytes())
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    session_id = _active_session(claims.meeting_key)
    if session_id is None:
        raise Conflict("files can be shared only while the meeting is running")
    delete_leftovers()
    file_id = secrets.token_urlsafe(24)  # 192 random bits: the object's name
    number = len(list(fs.query(fs.files(), ("meeting_key", "==", claims.meeting_key)).stream())) + 1
    label = f"shared-file-{number}.{kind.ext}"
    storage.put(bucket_name(), f"files/{file_id}", data, kind.content_type, label)
    doc = {
        "meeting_key": claims.meeting_key,
        "session_id": session_id,
        "object": f"files/{file_id}",
        "label": label,
        "content_type": kind.content_type,
        "size": len(data),
        "shared_by": claims.participant_id,
        "created_at": now,
    }
    fs.files().document(file_id).set(doc)
    return {"id": file_id, "label": label, "size": len(data), "content_type": kind.content_type}


def listing(claims: JoinClaims) -> list[dict[str, Any]]:
    session_id = _active_session(claims.meeting_key)
    if session_id is None:
        return []
    query = fs.query(fs.files(), ("meeting_key", "==", claims.meeting_key))
    out = []
    for snap in query.stream():
        d = fs.data(snap)
        if d["session_id"] != session_id:
            continue
        out.append(
            {
                "id": snap.id,
                "label": d["label"],
                "size": d["size"],
                "content_type": d["content_type"],
                "url": storage.signed_url(bucket_name(), d["object"], DOWNLOAD_URL_TTL),
            }
        )
    return sorted(out, key=lambda f: str(f["label"]))


def delete_session_files(meeting_key: str, session_id: str | None = None) -> int:
    """Delete the files of a meeting's ended session (all of the meeting's when ``session_id`` is None)."""
    deleted = 0
    for snap in fs.query(fs.files(), ("meeting_key", "==", meeting_key)).stream():
        d = fs.data(snap)
        if session_id is None or d["session_id"] == session_id:
            storage.delete(bucket_name(), d["object"])
            snap.reference.delete()
            deleted += 1
    return deleted


def delete_leftovers() -> int:
    """Files whose session is no longer the meeting's active one (a missed end, a crashed MCU)."""
    deleted = 0
    for snap in fs.query(fs.files(), order_by="created_at", limit=LEFTOVER_BATCH).stream():
        d = fs.data(snap)
        if _active_session(d["meeting_key"]) != d["session_id"]:
            storage.delete(bucket_name(), d["object"])
            snap.reference.delete()
            deleted += 1
    if deleted:
        log.info("deleted %d leftover shared files", deleted)
    return deleted


# --- PDF share: the organizer's documents, kept with the meeting -------------------------------


def share_pdf(claims: JoinClaims, data: bytes, now: datetime) -> dict[str, Any]:
    """The organizer shares a PDF; it stays until the meeting or its extension is deleted."""
    claims.require_organizer("only the organizer shares documents")
    try:
        classify("document.pdf", data, max_bytes())
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if b"%%EOF" not in data[-1024:]:
        raise InvalidRequest("the content is not a complete PDF")
    meeting = fs.data(fs.meetings().document(claims.meeting_key).get())
    if not meeting:
        raise Conflict("the meeting no longer exists")
    pdf_id = secrets.token_urlsafe(24)
    number = len(list(fs.query(fs.pdfs(), ("meeting_key", "==", claims.meeting_key)).stream())) + 1
    label = f"shared-document-{number}.pdf"
    storage.put(bucket_name(), f"pdfs/{pdf_id}", data, "application/pdf", label)
    fs.pdfs().document(pdf_id).set(
        {
            "meeting_key": claims.meeting_key,
            "pbx_id": meeting["pbx_id"],
            "organizer": meeting["organizer"],
            "object": f"pdfs/{pdf_id}",
            "label": label,
            "size": len(data),
            "created_at": now,
        }
    )
    return {"id": pdf_id, "label": label, "size": len(data)}


def list_pdfs(claims: JoinClaims) -> list[dict[str, Any]]:
    query = fs.query(fs.pdfs(), ("meeting_key", "==", claims.meeting_key))
    out = [
        {
            "id": s.id,
            "label": fs.data(s)["label"],
            "size": fs.data(s)["size"],
            "url": storage.signed_url(bucket_name(), fs.data(s)["object"], DOWNLOAD_URL_TTL),
        }
        for s in query.stream()
    ]
    return sorted(out, key=lambda p: str(p["label"]))


def unshare_pdf(claims: JoinClaims, pdf_id: str) -> None:
    claims.require_organizer("only the organizer removes documents")
    ref = fs.pdfs().document(pdf_id)
    d = fs.data(ref.get())
    if not d or d["meeting_key"] != claims.meeting_key:
        raise NotFound("no such document")
    storage.delete(bucket_name(), d["object"])
    ref.delete()


def delete_meeting_pdfs(meeting_key: str) -> int:
    """The meeting is gone (deleted by the PBX, or with its extension or PBX): its documents go."""
    count = 0
    for snap in fs.query(fs.pdfs(), ("meeting_key", "==", meeting_key)).stream():
        storage.delete(bucket_name(), fs.data(snap)["object"])
        snap.reference.delete()
        count += 1
    return count
