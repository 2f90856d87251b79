"""Meeting sessions: participant events from the MCUs, stored once each, and the session's
participant counter (a session starts when the first person joins and ends at 0).

The session keeps one register per connection (participant on an MCU): on or off, and the
time of the event that set it. An event older than the register's changes only the event log,
never the state, so duplicates and batches that arrive out of order leave the same state as
the order in which things happened. A person connected through two MCUs (a failover before the
dead MCU's goodbye) counts once; a late "left" from the dead MCU does not remove their new
connection.

A session that empties is over only after ``session_grace_s``: whoever comes back before
continues it (one meeting, one report). The end is final when the report task runs
(``services.reports.finalize``).

Reconciliation: an MCU's heartbeat lists who it has live; a connection the session believes on
but the MCU no longer has (its "left" was lost) gets a synthesized "left" at the snapshot time.
A dead MCU's connections get one at its last heartbeat (``close_dead_mcus``, run by the
scheduler and when a failover is confirmed). Synthesized events have deterministic ids, so a
repeated reconciliation stores them once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.domain.api import McuEvent
from webmeeting.errors import WriteConflict

PARTICIPANT_DATA_DAYS = 7  # policy: participant names and IPs kept up to 7 days after the meeting
PRUNE_AFTER = timedelta(hours=6)  # "off" registers older than this are dropped from the session


@dataclass
class Recorded:
    stored: int = 0
    started: list[tuple[str, str]] = field(default_factory=list)  # (meeting key, session id)
    ended: list[tuple[str, str]] = field(default_factory=list)


def _conn_key(participant_id: str, mcu_id: str) -> str:
    return f"{participant_id}~{mcu_id}"


def _on(conns: Mapping[str, Any]) -> dict[str, str]:
    """participant -> an MCU they are connected through."""
    return {c["pid"]: c["mcu"] for c in conns.values() if c.get("on")}


def record_events(batch: Iterable[McuEvent], mcu_id: str, now: datetime) -> Recorded:
    """Store each event once (by id) and move its session's state; report the sessions that
    started and ended. Duplicates (a retried batch) change nothing."""
    out = Recorded()
    grace = timedelta(seconds=runtime.settings().session_grace_s)
    for ev in batch:
        new, change = _record(ev, mcu_id, now, grace)
        out.stored += new
        if change and change[0] == "started":
            out.started.append((change[1], change[2]))
        elif change and change[0] == "ended":
            out.ended.append((change[1], change[2]))
    return out


def _record(ev: McuEvent, mcu_id: str, now: datetime, grace: timedelta) -> tuple[bool, tuple[str, str, str] | None]:
    ev_ref = fs.participant_events().document(ev.id)
    s_ref = fs.sessions().document(ev.meeting_key)

    def run(tx: fs.Transaction) -> tuple[bool, tuple[str, str, str] | None]:
        if ev_ref.get(transaction=tx).exists:
            return False, None
        session: dict[str, Any] = fs.data(s_ref.get(transaction=tx))
        conns: dict[str, Any] = dict(session.get("conns") or {})
        before = _on(conns)
        key = _conn_key(ev.participant_id, mcu_id)
        register = conns.get(key)
        opens = ev.type in ("joined", "reconnected")
        if register is None or ev.at > register["at"] or (ev.at == register["at"] and not opens):
            conns[key] = {"pid": ev.participant_id, "mcu": mcu_id, "on": opens, "at": ev.at}
        after = _on(conns)
        change: tuple[str, str, str] | None = None
        seen = set(session.get("seen") or [])
        if not before and after:
            ended_at = session.get("ended_at")
            continues = (
                session.get("session_id") and not session.get("finalized") and (ended_at is None or ev.at - ended_at <= grace)
            )
            if continues:
                session["ended_at"] = None
            else:
                session.update(
                    {
                        "session_id": secrets.token_hex(8),
                        "started_at": ev.at,
                        "ended_at": None,
                        "finalized": False,
                        "mcu_id": mcu_id,
                    }
                )
                seen = set()
                change = ("started", ev.meeting_key, session["session_id"])
        elif before and not after:
            session["ended_at"] = ev.at
            change = ("ended", ev.meeting_key, session["session_id"])
        kind = ev.type
        if opens:
            kind = "reconnected" if ev.participant_id in seen else "joined"
            seen.add(ev.participant_id)
        cutoff = ev.at - PRUNE_AFTER
        conns = {k: c for k, c in conns.items() if c["on"] or c["at"] > cutoff}
        session.update(
            {
                "conns": conns,
                "on_mcus": sorted(set(after.values())),
                "seen": sorted(seen),
                "count": len(after),
                "updated_at": now,
            }
        )
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
        return fs.transactional(run)
    except WriteConflict:
        return False, None  # the same event, stored concurrently


# --- reconciliation ---------------------------------------------------------------------------


def synthesized_left(meeting_key: str, participant_id: str, mcu_id: str, opened_at: datetime, at: datetime) -> McuEvent:
    """The "left" an MCU never sent for the connection opened at ``opened_at``; one id per connection."""
    digest = hashlib.sha256(f"{meeting_key}|{participant_id}|{mcu_id}|{opened_at.isoformat()}".encode()).hexdigest()
    return McuEvent(
        id=f"rc-{digest[:40]}",
        type="left",
        meeting_key=meeting_key,
        participant_id=participant_id,
        at=at,
        mcu_id=mcu_id,
        reason="reconciled",
    )


def lost_connections(
    session: Mapping[str, Any], meeting_key: str, mcu_id: str, live: set[str] | None, at: datetime
) -> list[McuEvent]:
    """Connections the session has on ``mcu_id`` whose "left" was lost. ``live`` is what the MCU
    reported live in its snapshot taken at ``at`` (connections opened after it are not judged);
    None: the MCU is dead, last seen at ``at`` (what opened after that closes where it opened)."""
    out = []
    for c in (session.get("conns") or {}).values():
        if c["mcu"] != mcu_id or not c["on"]:
            continue
        if live is None:
            out.append(synthesized_left(meeting_key, c["pid"], mcu_id, c["at"], max(at, c["at"])))
        elif c["at"] < at and c["pid"] not in live:
            out.append(synthesized_left(meeting_key, c["pid"], mcu_id, c["at"], at))
    return out


def on_mcu(mcu_id: str) -> Iterable[Any]:
    """Sessions with someone connected through ``mcu_id`` (an array-contains query: cost is
    proportional to those sessions, not to all)."""
    return fs.query(fs.sessions(), ("on_mcus", "array_contains", mcu_id)).stream()


def reconcile_live(mcu_id: str, live: Mapping[str, list[str]], snapshot_at: datetime, now: datetime) -> Recorded:
    """Compare the sessions' view of ``mcu_id`` with what it reports live."""
    synthesized: list[McuEvent] = []
    for snap in on_mcu(mcu_id):
        synthesized += lost_connections(fs.data(snap), snap.id, mcu_id, set(live.get(snap.id, [])), snapshot_at)
    return record_events(synthesized, mcu_id, now) if synthesized else Recorded()


def close_mcu(mcu_id: str, last_seen: datetime, now: datetime) -> Recorded:
    """``mcu_id`` is dead: everyone still connected through it left at its last heartbeat."""
    synthesized: list[McuEvent] = []
    for snap in on_mcu(mcu_id):
        synthesized += lost_connections(fs.data(snap), snap.id, mcu_id, None, last_seen)
    return record_events(synthesized, mcu_id, now) if synthesized else Recorded()


def move_session(meeting_key: str, mcu_id: str) -> None:
    """The session continues on another MCU (its own died): later joiners follow."""
    fs.sessions().document(meeting_key).set({"mcu_id": mcu_id}, merge=True)


@dataclass(frozen=True)
class Occupancy:
    count: int  # participants connected now
    mcu_id: str | None  # the MCU the running session is on
    seen: frozenset[str]  # participant ids seen in this session (they may come back)
    present: frozenset[str]  # participant ids connected now


def occupancy(meeting_key: str) -> Occupancy:
    d = fs.data(fs.sessions().document(meeting_key).get())
    count = int(d.get("count", 0))
    present = frozenset(_on(d.get("conns") or {}))
    return Occupancy(count, d.get("mcu_id") if count > 0 else None, frozenset(d.get("seen") or []), present)


def active_count(meeting_key: str) -> tuple[int, str | None]:
    """(participants now in the meeting's session, the MCU it runs on)."""
    o = occupancy(meeting_key)
    return o.count, o.mcu_id


def is_present(meeting_key: str, participant_id: str) -> bool:
    """Whether an MCU has confirmed that this participant is connected to the meeting now."""
    return participant_id in occupancy(meeting_key).present
