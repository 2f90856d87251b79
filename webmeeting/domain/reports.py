"""Meeting reports and anonymous statistics, pure: what a report says, how it is redacted for
admins, how it is sanitized, and what a meeting adds to the statistics."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webmeeting.domain.attendance import SessionAttendance

SANITIZED_NAME = "Participant {n}"


@dataclass(frozen=True)
class Invitee:
    name: str
    email: str


def _key(name: str) -> str:
    return " ".join(name.casefold().split())


def build(
    attendance: SessionAttendance,
    *,
    pbx_meeting_id: str | None,
    meeting_name: str,
    organizer_name: str,
    organizer_email: str | None,
    invitees: Iterable[Invitee],
) -> dict[str, Any]:
    """The report (the contract's fields without the id) and its timeline (seconds from the
    start per participant, by index; no names)."""
    emails = {_key(i.name): i.email for i in invitees if i.name and i.email}
    start = attendance.started_at
    end = attendance.ended_at
    assert start is not None and end is not None, "a report needs a session that happened"
    participants = []
    timeline = []
    for n, person in enumerate(attendance.people):
        name = person.name or (organizer_name if person.role == "organizer" else f"Guest {n + 1}")
        email = organizer_email if person.role == "organizer" else emails.get(_key(name))
        participants.append(
            {
                "name": name,
                "email": email,
                "role": person.role,
                "connected_seconds": round(person.connected_seconds),
                "reconnects": person.reconnects,
                "removed": person.removed,
            }
        )
        for iv in person.connected:
            timeline.append(
                {"i": n, "s": round((iv.start - start).total_seconds(), 3), "e": round((iv.end - start).total_seconds(), 3)}
            )
    return {
        "report": {
            "pbx_meeting_id": pbx_meeting_id,
            "meeting_name": meeting_name,
            "started_at": start,
            "ended_at": end,
            "participants": participants,
            "removals": sum(1 for p in participants if p["removed"]),
        },
        "timeline": timeline,
    }


def sanitize(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report without any personal data: names become "Participant n", emails and the
    meeting's name go; times, durations, roles and reconnects stay."""
    out = dict(report)
    out["meeting_name"] = ""
    out["participants"] = [
        {**p, "name": SANITIZED_NAME.format(n=n + 1), "email": None} for n, p in enumerate(report.get("participants", []))
    ]
    return out


# --- partial redaction for admins ---------------------------------------------------------------


def _mask_word(word: str) -> str:
    return word[:1] + "*" * (len(word) - 1) if word else word


def redact_name(name: str | None) -> str | None:
    """``Alice Liddell`` -> ``A**** L******``: enough for support to tell people apart."""
    if name is None:
        return None
    return re.sub(r"[^\s]+", lambda m: _mask_word(m.group(0)), name)


def redact_email(email: str | None) -> str | None:
    """``alice@example.com`` -> ``a****@e******.com`` (the top-level domain stays)."""
    if not email or "@" not in email:
        return redact_name(email)
    local, domain = email.rsplit("@", 1)
    host, dot, tld = domain.rpartition(".")
    masked_domain = f"{_mask_word(host)}.{tld}" if dot else _mask_word(domain)
    return f"{_mask_word(local)}@{masked_domain}"


def redacted(report: Mapping[str, Any]) -> dict[str, Any]:
    """What an admin sees of a report that has not been sanitized yet."""
    out = dict(report)
    out["meeting_name"] = redact_name(report.get("meeting_name"))
    out["participants"] = [
        {**p, "name": redact_name(p.get("name")), "email": redact_email(p.get("email"))} for p in report.get("participants", [])
    ]
    return out


# --- anonymous statistics ----------------------------------------------------------------------

STAT_FIELDS = ("meetings", "participants", "connected_minutes", "meeting_minutes", "reconnects")


def day_of(at: datetime) -> str:
    return at.strftime("%Y-%m-%d")


def stats_id(period: str, region: str) -> str:
    return f"{period}_{region}"


def contribution(report: Mapping[str, Any]) -> dict[str, int | float]:
    """What one meeting adds to its day's statistics: counts and minutes only. Built from the
    numbers alone, so no name, email, address or meeting name can end up in a statistic."""
    people = report.get("participants", [])
    started: datetime = report["started_at"]
    ended: datetime = report["ended_at"]
    return {
        "meetings": 1,
        "participants": len(people),
        "connected_minutes": round(sum(int(p["connected_seconds"]) for p in people) / 60, 2),
        "meeting_minutes": round(max(0.0, (ended - started).total_seconds()) / 60, 2),
        "reconnects": sum(int(p["reconnects"]) for p in people),
    }
