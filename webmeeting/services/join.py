"""Joining a meeting from the meeting page: checks, MCU choice, the join token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal

from webmeeting import crypto, tokens
from webmeeting.adapters import firestore as fs
from webmeeting.domain.api import JoinRequest, JoinResponse
from webmeeting.domain.licenses import license_problem
from webmeeting.domain.mcu import Mcu, choose_mcu
from webmeeting.errors import Forbidden, LicenseInvalid, Unavailable
from webmeeting.services.mcus import all_mcus
from webmeeting.services.meetings import resolve_key
from webmeeting.services.pbx_api import load_license
from webmeeting.services.sessions import active_count
from webmeeting.settings import Settings


def participant_id(rejoin_secret: str) -> str:
    """Public id of a participant; only whoever holds the rejoin secret can reconnect as it."""
    return hashlib.sha256(rejoin_secret.encode()).hexdigest()[:24]


def pick_mcu(mcus: list[Mcu], session_mcu: str | None, pbx_mcu: str | None, region: str) -> Mcu | None:
    """The meeting's running session stays where it is; else the PBX's default MCU; else the
    closest usable one."""
    usable = {m.id: m for m in mcus if m.status == "active"}
    for preferred in (session_mcu, pbx_mcu):
        if preferred in usable and (preferred == session_mcu or usable[preferred].load < usable[preferred].capacity):
            return usable[preferred]
    return choose_mcu(region, mcus)


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
    count, session_mcu = active_count(req.meeting_key)
    if req.rejoin_secret is None and count >= lic.max_participants:
        raise MeetingFull(f"this meeting allows {lic.max_participants} participants")
    mcu = pick_mcu(all_mcus(), session_mcu, pbx.get("mcu_id"), pbx.get("region") or settings.default_region)
    if mcu is None:
        raise Unavailable("no media server is available right now; try again in a minute")
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
    )
    token = tokens.issue(settings.require("join_token_key"), claims, wall_now)
    return JoinResponse(
        token=token, mcu_url=mcu.url, mcu_id=mcu.id, participant_id=pid, rejoin_secret=rejoin, role=role, expires_at=expires
    )
