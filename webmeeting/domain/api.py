"""The PBX API v1 bodies (contract: shared/contracts/pbx-api.md) as pydantic models.

Strict: no type coercion, unknown fields rejected, every string and list bounded.
The OpenAPI document is generated from these models (``webmeeting.domain.openapi``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal, NotRequired

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from typing_extensions import TypedDict

MAX_EXTENSIONS = 10_000
MAX_PARTICIPANTS_PER_MEETING = 500
MAX_MEETING_MINUTES = 24 * 60

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
FQDN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})+$")
LICENSE_RE = r"^WM-[A-Z0-9]{2,8}(-[A-Z0-9]{2,16}){1,4}$"
EXTENSION_RE = r"^[0-9]{1,16}$"
PBX_MEETING_ID_RE = r"^[A-Za-z0-9._~-]{1,64}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fqdn(value: str) -> str:
    lowered = value.lower()
    if not FQDN_RE.match(lowered):
        raise ValueError("must be a fully qualified domain name")
    if lowered.rsplit(".", 1)[-1].isdigit():  # no top-level domain is numeric: an IP address literal
        raise ValueError("must be a DNS name, not an IP address")
    return lowered


def is_email(value: str) -> bool:
    """Exactly one addr-spec (RFC 5322 via email-validator: no display names, no lists, no
    quoted local parts, no comments), so a value can never add recipients or headers."""
    try:
        validate_email(
            value, check_deliverability=False, allow_quoted_local=False, allow_domain_literal=False, test_environment=True
        )  # test_environment: the reserved .test names (the demo's) are no real destination
    except EmailNotValidError:
        return False
    return len(value) <= 254


def _email(value: str) -> str:
    if not is_email(value):
        raise ValueError("must be one email address")
    return value


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("must be an RFC 3339 time in UTC (Z)")
    return value


Fqdn = Annotated[str, Field(min_length=3, max_length=253), AfterValidator(_fqdn)]
Text = Annotated[str, AfterValidator(_no_control)]
ExtensionNumber = Annotated[str, Field(pattern=EXTENSION_RE)]
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors -------------------------------------------------------------------------------


class ErrorDetail(Response):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    message: str


class ErrorBody(Response):
    error: ErrorDetail


# --- activation -----------------------------------------------------------------------------


class ActivateRequest(Strict):
    license_key: str = Field(pattern=LICENSE_RE, max_length=64)
    pbx_fqdn: Fqdn
    webmeeting_fqdn: Fqdn
    pbx_version: str = Field(pattern=r"^[0-9A-Za-z.+-]{1,32}$")


class LicenseInfo(Response):
    edition: str
    max_participants: int
    recording: bool
    expires_at: datetime


class McuInfo(Response):
    id: str
    region: str
    url: str


class ActivateResponse(Response):
    pbx_id: str
    api_secret: str
    sync_interval_s: int
    license: LicenseInfo
    mcu: McuInfo | None = Field(description="null while no MCU is available")


# --- sync -----------------------------------------------------------------------------------


class Extension(Strict):
    number: ExtensionNumber
    first_name: Annotated[Text, Field(max_length=100)] | None = None
    last_name: Annotated[Text, Field(max_length=100)] | None = None
    email: Annotated[Text, Field(max_length=254)] | None = None
    vanity_name: Annotated[Text, Field(max_length=64)] | None = None


class SyncRequest(Strict):
    extensions: list[Extension] = Field(max_length=MAX_EXTENSIONS)


DisabledReason = Literal["missing_email", "invalid_email", "missing_name", "vanity_taken", "invalid_vanity"]


class ExtensionResultJson(TypedDict):
    number: str
    enabled: bool
    quick_meeting_url: NotRequired[str]
    quick_meeting_organizer_url: NotRequired[str]
    reason: NotRequired[DisabledReason]


class ExtensionResult(Response):
    number: str
    enabled: bool
    quick_meeting_url: str | None = None
    quick_meeting_organizer_url: str | None = Field(
        default=None, description="the organizer's link: joins with the organizer role"
    )
    reason: DisabledReason | None = None

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> ExtensionResultJson:
        """Enabled extensions carry a URL and no reason; disabled ones a reason and no URL."""
        return {k: v for k, v in handler(self).items() if v is not None}  # type: ignore[return-value]


class SyncResponse(Response):
    extensions: list[ExtensionResult]
    mcu: McuInfo | None
    pending_reports: int


# --- meetings -------------------------------------------------------------------------------


class Participant(Strict):
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    email: Annotated[Text, Field(max_length=254), AfterValidator(_email)]


# A person's name and nothing else: letters, joined by a space, hyphen, apostrophe or a period
# and space ("Grace Hopper", "Jean-Luc O'Neill", "J. R. Tolkien"); no digits, no links, no
# markup: what the meeting page lets someone type never becomes free text in a mail.
PERSON_NAME_RE = re.compile(r"^[^\W\d_]+(?:(?:[ '’-]|\. ?)[^\W\d_]+)*\.?$")
DOMAIN_LIKE_RE = re.compile(r"[^\W\d_]\.[^\W\d_]")  # "evil.com"


def _person_name(value: str) -> str:
    value = " ".join(value.split())
    if not PERSON_NAME_RE.match(value) or DOMAIN_LIKE_RE.search(value):
        raise ValueError("must be a person's name (letters, spaces, hyphens, apostrophes)")
    return value


class InvitedPerson(Strict):
    """Someone the organizer invites from inside the meeting (the page's form)."""

    name: Annotated[Text, Field(min_length=1, max_length=80), AfterValidator(_person_name)]
    email: Annotated[Text, Field(max_length=254), AfterValidator(_email)]


class MeetingRequest(Strict):
    organizer: ExtensionNumber
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    comments: Annotated[str, Field(max_length=4000)] = ""
    scheduled_start: UtcTime
    duration_minutes: int = Field(ge=1, le=MAX_MEETING_MINUTES)
    participants: list[Participant] = Field(default_factory=list, max_length=MAX_PARTICIPANTS_PER_MEETING)
    send_invitations: bool = False
    lobby: bool = Field(
        default=False,
        description="people wait at the door until the organizer or a presenter lets them in (optional; "
        "the organizer can also turn it on or off in the room)",
    )


class MeetingResponse(Response):
    meeting_key: str
    url: str
    vanity_url: str | None
    organizer_url: str = Field(description="the organizer's link: joins with the organizer role (secret in the fragment)")


# --- reports --------------------------------------------------------------------------------


class ReportParticipant(Response):
    name: str
    email: str | None
    role: Literal["organizer", "participant"]
    connected_seconds: int = Field(ge=0)
    reconnects: int = Field(ge=0)
    removed: bool = Field(default=False, description="the organizer removed them from the meeting")


class Report(Response):
    id: str
    pbx_meeting_id: str | None
    meeting_name: str
    started_at: datetime
    ended_at: datetime
    participants: list[ReportParticipant]
    removals: int = Field(default=0, ge=0, description="participants the organizer removed")


class ReportsResponse(Response):
    reports: list[Report]


# --- the meeting page and the MCUs (portal-internal APIs) ----------------------------------------


class JoinRequest(Strict):
    meeting_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    display_name: Annotated[Text, Field(min_length=1, max_length=64)]
    organizer_secret: str | None = Field(default=None, max_length=64)
    rejoin_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{16,64}$")
    failed_mcu_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class IceServer(Response):
    urls: list[str]
    username: str
    credential: str


class JoinResponse(Response):
    token: str
    mcu_url: str
    mcu_id: str
    participant_id: str
    rejoin_secret: str
    role: Literal["organizer", "participant"]
    expires_at: datetime
    ice_servers: list[IceServer] = Field(
        default_factory=list, description="the MCU's TURN server with short-lived credentials (TURN REST scheme)"
    )


class McuHeartbeat(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    region: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    url: str = Field(pattern=r"^wss?://", max_length=300)
    capacity: int = Field(ge=0, le=100_000)
    load: int = Field(ge=0, le=100_000)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    workers: int = Field(ge=1, le=1024)
    # who is connected right now, per meeting (reconciles lost "left" events), as of ``live_at``
    live: (
        dict[
            Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")],
            list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]],
        ]
        | None
    ) = Field(default=None, max_length=20_000)
    live_at: UtcTime | None = None


class McuEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    type: Literal["joined", "left", "reconnected"]
    meeting_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    participant_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    at: UtcTime
    mcu_id: str = Field(max_length=64)
    name: Annotated[Text, Field(max_length=64)] | None = None
    role: Literal["organizer", "participant"] | None = None
    ip: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=32)


class McuEvents(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[McuEvent] = Field(max_length=500)


# --- recordings ----------------------------------------------------------------------------------


class RecordingAction(Strict):
    action: Literal["start", "stop"]


class RawTrack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    track_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    participant_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    kind: Literal["audio", "video"]
    source: Literal["camera", "screen"] = "camera"  # a shared screen is the recording's main cell
    codec: Literal["vp8", "h264", "opus"]
    clock_rate: int = Field(ge=8000, le=192_000)
    file: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}\.wmr$")
    object: str = Field(
        pattern=r"^raw/[A-Za-z0-9_-]{1,64}/[0-9a-f]{32}/[A-Za-z0-9_-]{1,32}\.wmr$"
    )  # raw/<mcu>/<recording>/<file>
    frames: int = Field(ge=0)
    bytes: int = Field(ge=0)


class RecordingUploaded(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    recording_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    meeting_key: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    started_at: UtcTime
    stopped_at: UtcTime
    tracks: list[RawTrack] = Field(max_length=200)
