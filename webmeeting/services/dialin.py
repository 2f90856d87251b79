"""Dial-in data: fetched from the PBX when a meeting's session starts, shown to organizers only."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webmeeting import crypto
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import pbx_http, tasks
from webmeeting.settings import Settings

log = logging.getLogger("webmeeting.dialin")


class DialInNumber(BaseModel):
    model_config = ConfigDict(extra="ignore")

    country: str = Field(pattern=r"^[A-Z]{2}$")
    number: str = Field(pattern=r"^\+?[0-9 ()./-]{3,32}$")


class DialIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conference_number: str = Field(pattern=r"^[0-9*#]{1,16}$")
    dial_in: list[DialInNumber] = Field(max_length=50)


def fetch(meeting_key: str, session_id: str, settings: Settings, now: datetime) -> str:
    """Ask the PBX for the meeting's dial-in data and keep it with the session.
    Returns ok | unavailable | skipped. A PBX that does not answer leaves the data empty."""
    meeting = fs.data(fs.meetings().document(meeting_key).get())
    session_ref = fs.sessions().document(meeting_key)
    session = fs.data(session_ref.get())
    if not meeting or session.get("session_id") != session_id or "dialin" in session:
        return "skipped"
    pbx = fs.data(fs.pbxs().document(meeting["pbx_id"]).get())
    pbx_meeting = meeting.get("pbx_meeting_id") or f"quick-{meeting['organizer']}"
    secret = crypto.decrypt_secret(settings.secret_key, meeting["pbx_id"], pbx["secret_enc"])
    result: dict[str, Any]
    try:
        resp = pbx_http.call(
            "GET", pbx["pbx_fqdn"], f"/webmeeting/v1/dialin?meeting={quote(pbx_meeting, safe='')}", meeting["pbx_id"], secret
        )
        result = DialIn.model_validate(resp.json()).model_dump() | {"status": "ok"}
    except (pbx_http.PbxUnreachable, ValidationError, ValueError) as exc:
        log.warning("dial-in for a meeting of PBX %s unavailable: %s", meeting["pbx_id"], exc)
        result = {"status": "unavailable", "conference_number": None, "dial_in": []}
    session_ref.set({"dialin": result | {"fetched_at": now}}, merge=True)
    return str(result["status"])


def for_organizer(meeting_key: str) -> dict[str, Any]:
    """The session's dial-in data (status pending until the PBX has been asked)."""
    dialin = fs.data(fs.sessions().document(meeting_key).get()).get("dialin")
    if not dialin:
        return {"status": "pending", "conference_number": None, "dial_in": []}
    return {k: dialin[k] for k in ("status", "conference_number", "dial_in")}


def enqueue_dialin(project: str, target: str, meeting_key: str, session_id: str) -> None:
    try:
        tasks.enqueue(project, "pbx", f"{target}/tasks/v1/dialin", {"meeting_key": meeting_key, "session_id": session_id})
    except Exception:  # noqa: BLE001 - no dial-in data then; the meeting goes on
        log.exception("could not enqueue the dial-in fetch")
