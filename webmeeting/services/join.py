"""Joining a meeting from the meeting page: checks, MCU choice, the join token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal

from webmeeting import crypto, tokens, turn
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import mcu_identity
from webmeeting.domain.api import IceServer, JoinRequest, JoinResponse
from webmeeting.domain.licenses import license_problem
from webmeeting.domain.mcu import Location, Mcu, NoMcuAvailable, choose_mcu, meeting_streams, streams_for_join
from webmeeting.errors import Forbidden, LicenseInvalid, Unavailable
from webmeeting.services.licenses import load_license
from webmeeting.services.mcus import all_mcus, confirm_failure, pbx_location
from webmeeting.services.meetings import resolve_key
from webmeeting.services.sessions import move_session, occupancy
from webmeeting.settings import Settings


def participant_id(rejoin_secret: str) -> str:
    """Public id of a participant; only whoever holds the rejoin secret can reconnect as it."""
    return hashlib.sha256(rejoin_secret.encode()).hexdigest()[:24]


def pick_mcu(mcus: list[Mcu], session_mcu: str | None, pbx_mcu: str | None, where: Location, present: int = 0) -> Mcu:
    """Where a join goes: a running session stays on its MCU while that is alive (even if
    deprecated meanwhile: one meeting is never split) and has room for the streams this person
    adds to a meeting of ``present`` (``streams_for_join``); else the PBX's default MCU if it
    takes new participants; else, without waiting for the next sync, the closest MCU that does.
    A running meeting that moves goes whole (everyone reconnecting follows): to an MCU with room
    for all of it, when one has."""
    by_id = {m.id: m for m in mcus}
    running = by_id.get(session_mcu or "")
    if running and running.takes(streams_for_join(present)):
        return running
    whole = meeting_streams(present + 1) if session_mcu else 0
    roomy = [m for m in mcus if m.id != session_mcu and m.takes(whole)]
    default = by_id.get(pbx_mcu or "")
    if default and default.usable and default in roomy:
        return default
    return choose_mcu(where, roomy) if any(m.usable for m in roomy) else choose_mcu(where, mcus)


class MeetingFull(Forbidden):
    code = "meeting_full"


def join(req: JoinRequest, settings: Settings, now: datetime, wall_now: datetime) -> JoinResponse:
    """``now``: platform time (license expiry); ``wall_now``: real time, for the token the MCU
    checks against its own clock."""
    view = resolve_key(req.meeting_key)
    pbx = fs.data(fs.pbxs().document(view.pbx_id).get())
    lic = load_license(pbx.get("license_key", ""))
    problem = license_problem(lic, now)
    if problem or lic is None:
        raise LicenseInvalid(f"this meeting's {problem or 'license unknown'}")
    room = occupancy(req.meeting_key)
    count, session_mcu = room.count, room.mcu_id
    # a full meeting takes back only someone it has seen in this session (a reconnect), never a
    # newcomer with a made-up rejoin secret
    returning = req.rejoin_secret is not None and participant_id(req.rejoin_secret) in room.seen
    if count >= lic.max_participants and not returning:
        raise MeetingFull(f"this meeting allows {lic.max_participants} participants")
    mcus = all_mcus()
    if req.failed_mcu_id:
        reported = next((m for m in mcus if m.id == req.failed_mcu_id and m.status != "unavailable"), None)
        if reported and confirm_failure(reported):
            mcus = all_mcus()
    try:
        # a reconnect is one of those counted: it comes back to the others
        others = count - 1 if returning else count
        mcu = pick_mcu(mcus, session_mcu, pbx.get("mcu_id"), pbx_location(pbx, settings), others)
    except NoMcuAvailable as exc:
        raise Unavailable(f"no media server is available right now ({exc}); try again in a minute") from exc
    if session_mcu and mcu.id != session_mcu:
        move_session(req.meeting_key, mcu.id)  # everyone reconnecting follows to the same MCU
    organizer = req.organizer_secret is not None and hmac.compare_digest(
        req.organizer_secret, crypto.organizer_secret(settings.secret_key, req.meeting_key)
    )
    rejoin = req.rejoin_secret or secrets.token_urlsafe(16)
    pid = participant_id(rejoin)
    role: Literal["organizer", "participant"] = "organizer" if organizer else "participant"
    expires = tokens.expiry(wall_now)
    claims = tokens.JoinClaims(
        meeting_key=req.meeting_key,
        participant_id=pid,
        display_name=req.display_name,
        role=role,
        mcu_id=mcu.id,
        max_participants=lic.max_participants,
        expires_at=expires,
        lobby=bool(view.meeting.get("lobby")),
    )
    token = tokens.issue(settings.require("join_token_key"), claims, wall_now)
    return JoinResponse(
        token=token,
        mcu_url=mcu.url,
        mcu_id=mcu.id,
        participant_id=pid,
        rejoin_secret=rejoin,
        role=role,
        expires_at=expires,
        ice_servers=turn_servers(mcu.id, pid, settings, wall_now),
    )


def turn_servers(mcu_id: str, participant_id: str, settings: Settings, wall_now: datetime) -> list[IceServer]:
    """The TURN server that runs with ``mcu_id``, with credentials for this participant."""
    entry = mcu_identity.registry().get(mcu_id)
    if entry is None or not entry.turn_urls or not settings.turn_secret:
        return []
    return [IceServer(**turn.credentials(settings.turn_secret, participant_id, entry.turn_urls, wall_now))]
