"""Meeting sessions: participant events from the MCUs, stored once each, and the session's
participant counter (a session starts when the first person joins and ends at 0)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from webmeeting.adapters import firestore as fs
from webmeeting.domain.api import McuEvent

PARTICIPANT_DATA_DAYS = 7  # policy: participant names and IPs kept up to 7 days after the meeting


def sessions() -> firestore.CollectionReference:
    return fs.client().collection("sessions")


def events() -> firestore.CollectionReference:
    return fs.client().collection("participant_events")


def record_events(batch: list[McuEvent], mcu_id: str, now: datetime) -> int:
    """Store each event once (by id) and move its session's counter. Returns how many were new.

    Duplicates (a retried batch) change nothing; joined and reconnected count +1, left -1.
    """
    stored = 0
    for ev in batch:
        if _record(ev, mcu_id, now):
            stored += 1
    return stored


def _record(ev: McuEvent, mcu_id: str, now: datetime) -> bool:
    db = fs.client()
    ev_ref = events().document(ev.id)
    s_ref = sessions().document(ev.meeting_key)

    @firestore.transactional
    def run(tx: firestore.Transaction) -> bool:
        if ev_ref.get(transaction=tx).exists:
            return False
        snap = s_ref.get(transaction=tx)
        session: dict[str, Any] = fs.data(snap)
        count = int(session.get("count", 0))
        if count == 0 and ev.type in ("joined", "reconnected"):
            session = {"session_id": secrets.token_hex(8), "started_at": ev.at, "mcu_id": mcu_id, "count": 0}
        delta = {"joined": 1, "reconnected": 1, "left": -1}[ev.type]
        session["count"] = max(0, int(session.get("count", 0)) + delta)
        session["updated_at"] = now
        if session["count"] == 0:
            session["ended_at"] = ev.at
        tx.set(s_ref, session)
        tx.create(
            ev_ref,
            {
                **ev.model_dump(),
                "session_id": session.get("session_id"),
                "mcu_id": mcu_id,
                "received_at": now,
                "expire_at": ev.at + timedelta(days=PARTICIPANT_DATA_DAYS),
            },
        )
        return True

    try:
        return bool(run(db.transaction()))
    except (gexc.AlreadyExists, gexc.Conflict):
        return False  # the same event, stored concurrently


def active_count(meeting_key: str) -> tuple[int, str | None]:
    """(participants now in the meeting's session, the MCU it runs on)."""
    snap = sessions().document(meeting_key).get()
    d = fs.data(snap)
    count = int(d.get("count", 0))
    return count, (d.get("mcu_id") if count > 0 else None)
