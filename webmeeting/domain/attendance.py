"""Attendance arithmetic: who was connected when, from the MCUs' participant events.

Pure: no I/O. Events carry ids (a retried batch repeats them), the MCU's server timestamps (a
batch may arrive late, out of order) and may miss a "left" (an MCU that died says nothing). So:

- events are deduplicated by id and ordered by their own time, never by arrival;
- a connection is one participant on one MCU, opened by ``joined``/``reconnected`` and closed by
  the first ``left`` after it; a second open on the same MCU while still open means the "left"
  was lost: the earlier connection ends there, and it counts as a reconnect;
- a connection still open at the end is closed at its MCU's cutoff: the time the MCU was last
  known alive (a dead MCU) or the session's end;
- a person's connected time is the union of their connections (a failover overlap, a duplicated
  browser tab on two MCUs is not counted twice); a reconnect is every return after the
  first connection: each new connected stretch, and each lost "left".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

OPEN_TYPES = frozenset({"joined", "reconnected"})


@dataclass(frozen=True)
class Event:
    id: str
    type: str  # joined | reconnected | left
    participant_id: str
    mcu_id: str
    at: datetime
    name: str | None = None
    role: str | None = None
    reason: str | None = None  # of a "left": left | removed | replaced | mcu_shutdown | reconciled


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass
class Attendance:
    participant_id: str
    name: str
    role: str  # organizer | participant
    connected: list[Interval] = field(default_factory=list)  # merged, ordered
    reconnects: int = 0
    first_seen: datetime | None = None
    removed: bool = False  # the organizer removed them from the session

    @property
    def connected_seconds(self) -> float:
        return sum(i.seconds for i in self.connected)


@dataclass
class SessionAttendance:
    started_at: datetime | None
    ended_at: datetime | None
    people: list[Attendance]


def dedupe(events: Iterable[Event]) -> list[Event]:
    """One event per id, ordered by time; at the same instant opens come before closes."""
    unique = {e.id: e for e in events}
    return sorted(unique.values(), key=lambda e: (e.at, 0 if e.type in OPEN_TYPES else 1, e.id))


def _connections(events: list[Event], cutoffs: Mapping[str, datetime], end: datetime | None) -> tuple[list[Interval], int]:
    """Intervals of one participant on one MCU, and how many "left"s were lost in between."""
    out: list[Interval] = []
    lost = 0
    open_at: datetime | None = None
    for ev in events:
        if ev.type in OPEN_TYPES:
            if open_at is not None:
                out.append(Interval(open_at, ev.at))
                lost += 1
            open_at = ev.at
        elif open_at is not None:
            out.append(Interval(open_at, ev.at))
            open_at = None
    if open_at is not None:
        mcu_id = events[-1].mcu_id
        limit = cutoffs.get(mcu_id) or end
        if limit is not None:
            out.append(Interval(open_at, max(open_at, limit)))
    return out, lost


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of intervals: overlapping or touching ones become one."""
    merged: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.end)):
        if merged and iv.start <= merged[-1].end:
            if iv.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, iv.end)
        else:
            merged.append(iv)
    return merged


def compute(
    events: Iterable[Event], *, cutoffs: Mapping[str, datetime] | None = None, end: datetime | None = None
) -> SessionAttendance:
    """Attendance of one meeting session.

    ``cutoffs``: per MCU, the time it was last known alive, for MCUs that died (their open
    connections end there). ``end``: where connections still open are closed otherwise (the
    session's end, or now for a running session); without it they are left out."""
    cutoffs = cutoffs or {}
    ordered = dedupe(events)
    by_person: dict[str, list[Event]] = {}
    for ev in ordered:
        by_person.setdefault(ev.participant_id, []).append(ev)
    people: list[Attendance] = []
    for pid, evs in by_person.items():
        per_mcu: dict[str, list[Event]] = {}
        for ev in evs:
            per_mcu.setdefault(ev.mcu_id, []).append(ev)
        intervals: list[Interval] = []
        lost = 0
        for mcu_events in per_mcu.values():
            found, missing = _connections(mcu_events, cutoffs, end)
            intervals += found
            lost += missing
        names = [e.name for e in evs if e.name]
        opens = [e for e in evs if e.type in OPEN_TYPES]
        if not opens:
            continue  # only "left"s: nothing to count
        merged = merge(intervals)
        people.append(
            Attendance(
                participant_id=pid,
                name=names[-1] if names else "",
                role="organizer" if any(e.role == "organizer" for e in evs) else "participant",
                connected=merged,
                reconnects=max(0, len(merged) - 1) + lost,
                first_seen=opens[0].at,
                removed=any(e.type == "left" and e.reason == "removed" for e in evs),
            )
        )
    people.sort(key=lambda a: (a.first_seen or datetime.max, a.participant_id))
    starts = [iv.start for a in people for iv in a.connected]
    ends = [iv.end for a in people for iv in a.connected]
    return SessionAttendance(started_at=min(starts, default=None), ended_at=max(ends, default=None), people=people)
