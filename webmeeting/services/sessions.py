"""Meeting sessions: participant events from the MCUs, stored once each, and the session's
participant counter (a session starts when the first person joins and ends at 0).

The session knows who is connected and through which MCU (``participants``: id -> MCU). So a
person who reappears on another MCU after theirs died counts as a reconnect, not a second
person, and a late "left" from the dead MCU does not remove their new connection.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
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


@dataclass
class Recorded:
    stored: int = 0
    started: list[tuple[str, str]] = field(default_factory=list)  # (meeting key, session id)
    ended: list[tuple[str, str]] = field(default_factory=list)


def record_events(batch: list[McuEvent], mcu_id: str, now: datetime) -> Recorded:
    """Store each event once (by id) and move its session's counter; report the sessions that
    started and ended. Duplicates (a retried batch) change nothing."""
    out = Recorded()
    for ev in batch:
        new, change = _record(ev, mcu_id, now)
        out.stored += new
        if change and change[0] == "started":
            out.started.append(change[1:])  # type: ignore[arg-type]
        elif change and change[0] == "ended":
            out.ended.append(change[1:])  # type: ignore[arg-type]
    return out


def _record(ev: McuEvent, mcu_id: str, now: datetime) -> tuple[bool, tuple[str, str, str] | None]:
    db = fs.client()
    ev_ref = events().document(ev.id)
    s_ref = sessions().document(ev.meeting_key)

    @firestore.transactional
    def run(tx: firestore.Transaction) -> tuple[bool, tuple[str, str, str] | None]:
        if ev_ref.get(transaction=tx).exists:
            return False, None
        change: tuple[str, str, str] | None = None
        snap = s_ref.get(transaction=tx)
        session: dict[str, Any] = fs.data(snap)
        connected: dict[str, str] = dict(session.get("participants") or {})
        seen = set(session.get("seen") or [])
        if not connected and ev.type in ("joined", "reconnected"):
            session = {"session_id": secrets.token_hex(8), "started_at": ev.at, "mcu_id": mcu_id}
            seen = set()
            change = ("started", ev.meeting_key, session["session_id"])
        kind = ev.type
        if kind in ("joined", "reconnected"):
            kind = "reconnected" if ev.participant_id in seen else "joined"
            connected[ev.participant_id] = mcu_id
            seen.add(ev.participant_id)
        elif connected.get(ev.participant_id) == mcu_id:
            del connected[ev.participant_id]
        session.update({"participants": connected, "seen": sorted(seen), "count": len(connected), "updated_at": now})
        if not connected:
            session["ended_at"] = ev.at
            if session.get("session_id") and change is None:
                change = ("ended", ev.meeting_key, session["session_id"])
        tx.set(s_ref, session)
        tx.create(
            ev_ref,
            {
                **ev.model_dump(),
                "type": kind,  # the session's view: back after a drop or an MCU failover = reconnected
                "session_id": session.get("session_id"),
                "mcu_id": mcu_id,
                "received_at": now,
                "expire_at": ev.at + timedelta(days=PARTICIPANT_DATA_DAYS),
            },
        )
        return True, change

    try:
        result: tuple[bool, tuple[str, str, str] | None] = run(db.transaction())
        return result
    except (gexc.AlreadyExists, gexc.Conflict):
        return False, None  # the same event, stored concurrently


def move_session(meeting_key: str, mcu_id: str) -> None:
    """The session continues on another MCU (its own died): later joiners follow."""
    sessions().document(meeting_key).set({"mcu_id": mcu_id}, merge=True)


def active_count(meeting_key: str) -> tuple[int, str | None]:
    """(participants now in the meeting's session, the MCU it runs on)."""
    snap = sessions().document(meeting_key).get()
    d = fs.data(snap)
    count = int(d.get("count", 0))
    return count, (d.get("mcu_id") if count > 0 else None)
