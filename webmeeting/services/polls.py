"""Polls: owned by the organizer's extension and reusable across its meetings; run in a
meeting session, voted once per participant, results live; a PDF report for the organizer.
Deleted when the organizer deletes them or the extension disappears from the PBX."""

from __future__ import annotations

import io
import secrets
from datetime import datetime
from typing import Any

from fpdf import FPDF

from webmeeting.adapters import firestore as fs
from webmeeting.domain.polls import PollDraft, tally
from webmeeting.errors import Conflict, InvalidRequest, NotFound, WriteConflict
from webmeeting.tokens import JoinClaims


def _owner(claims: JoinClaims) -> tuple[str, str]:
    """(pbx_id, extension) of the meeting's organizer; only an organizer may manage polls."""
    claims.require_organizer("polls are managed by the organizer")
    meeting = fs.data(fs.meetings().document(claims.meeting_key).get())
    if not meeting:
        raise NotFound("no such meeting")
    return meeting["pbx_id"], meeting["organizer"]


def _own_poll(claims: JoinClaims, poll_id: str) -> tuple[Any, dict[str, Any]]:
    pbx_id, ext = _owner(claims)
    ref = fs.polls().document(poll_id)
    poll = fs.data(ref.get())
    if not poll or poll["pbx_id"] != pbx_id or poll["organizer"] != ext:
        raise NotFound("no such poll")
    return ref, poll


def list_polls(claims: JoinClaims) -> list[dict[str, Any]]:
    pbx_id, ext = _owner(claims)
    query = fs.query(fs.polls(), ("pbx_id", "==", pbx_id), ("organizer", "==", ext))
    return sorted(({"id": s.id, **_public(fs.data(s))} for s in query.stream()), key=lambda p: str(p["question"]))


def _public(poll: dict[str, Any]) -> dict[str, Any]:
    return {"question": poll["question"], "options": poll["options"]}


def create(claims: JoinClaims, draft: PollDraft, now: datetime) -> dict[str, Any]:
    pbx_id, ext = _owner(claims)
    poll_id = secrets.token_urlsafe(12)
    fs.polls().document(poll_id).set(
        {"pbx_id": pbx_id, "organizer": ext, **draft.model_dump(), "created_at": now, "updated_at": now}
    )
    return {"id": poll_id, **draft.model_dump()}


def edit(claims: JoinClaims, poll_id: str, draft: PollDraft, now: datetime) -> dict[str, Any]:
    ref, _ = _own_poll(claims, poll_id)
    ref.update({**draft.model_dump(), "updated_at": now})
    return {"id": poll_id, **draft.model_dump()}


def delete(claims: JoinClaims, poll_id: str) -> None:
    ref, _ = _own_poll(claims, poll_id)
    _delete_poll(ref)


def _delete_poll(ref: Any) -> None:
    for run in fs.query(fs.poll_runs(), ("poll_id", "==", ref.id)).stream():
        fs.recursive_delete(run.reference)
    ref.delete()


def delete_for_extension(pbx_id: str, ext: str) -> int:
    """The extension is gone from its PBX: its polls go too."""
    query = fs.query(fs.polls(), ("pbx_id", "==", pbx_id), ("organizer", "==", ext))
    count = 0
    for snap in query.stream():
        _delete_poll(snap.reference)
        count += 1
    return count


def run(claims: JoinClaims, poll_id: str, now: datetime) -> dict[str, Any]:
    """Start the poll in the meeting's running session (a snapshot: later edits do not change it)."""
    _, poll = _own_poll(claims, poll_id)
    session = fs.data(fs.sessions().document(claims.meeting_key).get())
    if not session.get("count"):
        raise Conflict("a poll can be run only while the meeting is running")
    run_id = secrets.token_urlsafe(12)
    fs.poll_runs().document(run_id).set(
        {
            "poll_id": poll_id,
            "meeting_key": claims.meeting_key,
            "session_id": session["session_id"],
            "question": poll["question"],
            "options": poll["options"],
            "started_at": now,
        }
    )
    return {"run_id": run_id}


def _session_run(claims: JoinClaims, run_id: str) -> tuple[Any, dict[str, Any]]:
    ref = fs.poll_runs().document(run_id)
    data = fs.data(ref.get())
    if not data or data["meeting_key"] != claims.meeting_key:
        raise NotFound("no such poll in this meeting")
    return ref, data


def vote(claims: JoinClaims, run_id: str, option: int, now: datetime) -> None:
    ref, data = _session_run(claims, run_id)
    if option >= len(data["options"]):
        raise InvalidRequest(f"option must be 0-{len(data['options']) - 1}")
    try:
        fs.create(fs.votes(run_id).document(claims.participant_id), {"option": option, "at": now})
    except WriteConflict as exc:
        raise Conflict("you have already voted in this poll") from exc


def results(claims: JoinClaims) -> list[dict[str, Any]]:
    """Every poll run in the meeting's current session, with live results and one's own vote."""
    session = fs.data(fs.sessions().document(claims.meeting_key).get())
    query = fs.query(fs.poll_runs(), ("meeting_key", "==", claims.meeting_key))
    out = []
    for snap in query.stream():
        d = fs.data(snap)
        if d["session_id"] != session.get("session_id"):
            continue
        votes = {v.id: int(fs.data(v)["option"]) for v in fs.votes(snap.id).stream()}
        out.append(
            {
                "run_id": snap.id,
                "question": d["question"],
                "options": d["options"],
                "results": tally(d["options"], votes.values()),
                "voters": len(votes),
                "my_vote": votes.get(claims.participant_id),
            }
        )
    return out


def report_pdf(claims: JoinClaims, run_id: str) -> bytes:
    """The organizer's PDF of a poll run's results."""
    _owner(claims)
    ref, d = _session_run(claims, run_id)
    votes = [int(fs.data(v)["option"]) for v in fs.votes(run_id).stream()]
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 10, _latin1(d["question"]))
    pdf.set_font("Helvetica", size=11)
    pdf.cell(
        0, 8, f"Poll results, {d['started_at'].strftime('%Y-%m-%d %H:%M UTC')}, {len(votes)} votes", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(4)
    for row in tally(d["options"], votes):
        pdf.cell(120, 8, _latin1(str(row["option"]))[:70])
        pdf.cell(30, 8, f"{row['votes']}", align="R")
        pdf.cell(30, 8, f"{row['percent']} %", align="R", new_x="LMARGIN", new_y="NEXT")
    out = io.BytesIO(pdf.output())
    return out.getvalue()


def _latin1(text: str) -> str:
    """The core PDF fonts are Latin-1: other characters become '?' rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")
