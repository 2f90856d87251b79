"""Short-lived join tokens: the portal signs (ES256, private key), MCUs verify (public key).

An MCU can check a token but never mint one. Claims:
  iss "webmeeting-portal", aud "mcu:<mcu_id>", sub meeting key, pid participant id,
  name display name, role organizer|participant, max participants of the license, iat, exp, jti.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webmeeting.errors import Forbidden

ISSUER = "webmeeting-portal"
ALGORITHM = "ES256"
JOIN_TOKEN_TTL_S = 60  # time to connect (or reconnect) to the MCU; checked at every (re)connect
CLOCK_LEEWAY_S = 5


class TokenError(ValueError):
    """The token is not acceptable (message is safe to show)."""


@dataclass(frozen=True)
class JoinClaims:
    meeting_key: str
    participant_id: str
    display_name: str
    role: str  # organizer | participant
    mcu_id: str
    max_participants: int
    expires_at: datetime
    lobby: bool = False  # the meeting's setting: people wait at the door until let in

    def require_organizer(self, message: str) -> None:
        """403 ``organizer_only`` (with ``message``) unless this is the meeting's organizer."""
        if self.role != "organizer":
            raise Forbidden(message, code="organizer_only")


def new_keypair() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


def issue(private_pem: str, claims: JoinClaims, now: datetime) -> str:
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": f"mcu:{claims.mcu_id}",
        "sub": claims.meeting_key,
        "pid": claims.participant_id,
        "name": claims.display_name,
        "role": claims.role,
        "max": claims.max_participants,
        "lobby": claims.lobby,
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(payload, private_pem, algorithm=ALGORITHM)


def public_key_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def verify(public_pem: str, token: str, mcu_id: str | None, now: datetime) -> JoinClaims:
    """Check signature, issuer, audience (this MCU; ``None``: the portal, any MCU) and expiry."""
    try:
        data = jwt.decode(
            token,
            public_pem,
            algorithms=[ALGORITHM],
            audience=f"mcu:{mcu_id}" if mcu_id else None,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False, "verify_aud": mcu_id is not None},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    exp = int(data["exp"])
    if now.timestamp() > exp + CLOCK_LEEWAY_S:
        raise TokenError("token expired")
    role = data.get("role")
    if role not in ("organizer", "participant"):
        raise TokenError("invalid token: role")
    return JoinClaims(
        meeting_key=str(data["sub"]),
        participant_id=str(data["pid"]),
        display_name=str(data["name"]),
        role=str(role),
        mcu_id=mcu_id or str(data["aud"]).removeprefix("mcu:"),
        max_participants=int(data["max"]),
        expires_at=datetime.fromtimestamp(exp, now.tzinfo),
        lobby=data.get("lobby") is True,
    )


def expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=JOIN_TOKEN_TTL_S)


# --- recording grants: the organizer's page carries the portal's permission to the MCU ----------

GRANT_TTL_S = 60


@dataclass(frozen=True)
class RecordingGrant:
    meeting_key: str
    recording_id: str
    action: str  # start | stop
    mcu_id: str


def issue_grant(private_pem: str, grant: RecordingGrant, now: datetime) -> str:
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": f"mcu:{grant.mcu_id}",
        "sub": grant.meeting_key,
        "typ": "recording",
        "rec": grant.recording_id,
        "act": grant.action,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + GRANT_TTL_S,
    }
    return jwt.encode(payload, private_pem, algorithm=ALGORITHM)


def verify_grant(public_pem: str, token: str, mcu_id: str, meeting_key: str, now: datetime) -> RecordingGrant:
    """A recording grant for this MCU and meeting, unexpired (a join token is not one)."""
    try:
        data = jwt.decode(
            token,
            public_pem,
            algorithms=[ALGORITHM],
            audience=f"mcu:{mcu_id}",
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid grant: {exc}") from exc
    if data.get("typ") != "recording" or data.get("act") not in ("start", "stop"):
        raise TokenError("not a recording grant")
    if now.timestamp() > int(data["exp"]) + CLOCK_LEEWAY_S:
        raise TokenError("grant expired")
    if data["sub"] != meeting_key:
        raise TokenError("this grant is for another meeting")
    return RecordingGrant(str(data["sub"]), str(data["rec"]), str(data["act"]), mcu_id)
