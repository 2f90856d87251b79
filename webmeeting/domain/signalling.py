"""The signalling contract between the meeting page and the MCU: every message, both ways,
defined once.

The MCU validates every message a browser sends against ``ClientMessage`` (size, type, range)
and builds every message it sends from ``ServerMessage``'s models. The page is built against the
same names: ``functions/meeting_page/assets/signalling.js`` is generated from this module
(``make signalling``; a test keeps it current), and ``docs/signalling.schema.json`` is the JSON
Schema of both directions.

Browser -> MCU: ``join`` (first, always; the key must be the token's), ``publish`` (its camera's
audio and video, or a shared screen: each a ``source`` of its own, sendonly), ``unshare``,
``subscribe_answer``, ``mute``, ``record`` (organizer, with the portal's grant), ``chat`` (to
everyone or one person), ``hand`` (raise or lower one's own; the organizer lowers anyone's),
``react``, ``changed`` (shared content changed through the portal), ``moderate`` / ``mute_all``
/ ``lock`` / ``lobby`` (the organizer's), ``admit`` (organizer and presenters), ``leave``.
MCU -> browser: ``joined`` (with the session's chat so far), ``lobby_waiting`` (to a person
waiting at the door: nothing else reaches them), ``lobby_state`` (who waits: to the organizer and
presenters), ``lobby_rejected``, ``publish_answer``, ``subscribe_offer``, ``participant_joined``
/ ``participant_updated`` / ``participant_left``, ``recording`` (to everyone),
``chat_message``, ``reaction``, ``content_changed``, ``lock_state``, ``removed``, ``error`` (a
stable code and a fixed text, never an exception's).

Chat is never stored: the MCU relays it and keeps the session's last ``CHAT_HISTORY`` messages
in memory for late joiners, gone when the session ends; it is in no log, report or database.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_SDP_CHARS = 60_000  # an SDP is a few KiB; the socket's frame limit is 64 KiB
MAX_TOKEN_CHARS = 4096
MAX_CHAT_CHARS = 1000  # one chat message
CHAT_HISTORY = 200  # messages a room keeps in memory for late joiners
REACTIONS = ("👍", "👏", "😂", "❤️", "🎉", "😮")
PARTICIPANT_ID = r"^[A-Za-z0-9_-]{8,64}$"
Role = Literal["organizer", "presenter", "participant"]  # presenter: given in the room by the organizer

# the only texts an error message carries, by code: fixed, never an exception's
ERROR_TEXT: dict[str, str] = {
    "invalid_request": "the message is not valid here",
    "unauthenticated": "the token is missing, invalid, expired or for another meeting or MCU",
    "meeting_full": "this meeting has reached its participant limit",
    "forbidden": "only the organizer may do this",
    "rate_limited": "too many messages; slow down",
    "invalid_sdp": "the session description was refused",
    "too_many_tracks": "a publish carries at most one audio and one video track",
    "removed": "the organizer removed you from this meeting",
    "meeting_locked": "the organizer has locked this meeting",
    "not_presenter": "only the organizer and presenters may do this",
    "screen_busy": "someone else is sharing their screen",
    "lobby_full": "too many people are waiting to be let in",
    "rejected": "the organizer did not let you in",
}
ErrorCode = Literal[
    "invalid_request",
    "unauthenticated",
    "meeting_full",
    "forbidden",
    "rate_limited",
    "invalid_sdp",
    "too_many_tracks",
    "removed",
    "meeting_locked",
    "not_presenter",
    "screen_busy",
    "lobby_full",
    "rejected",
]


# WebSocket close codes the MCU uses (after an ``error``, ``removed`` or ``lobby_rejected``)
CLOSE_INVALID, CLOSE_UNAUTHENTICATED, CLOSE_FULL, CLOSE_REMOVED, CLOSE_REJECTED, CLOSE_RATE = 4000, 4001, 4003, 4004, 4005, 4029


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Sdp = Annotated[str, Field(min_length=1, max_length=MAX_SDP_CHARS)]
# what a publish carries: the camera (and microphone), or a shared screen (with its audio if offered)
Source = Literal["camera", "screen"]


# --- browser -> MCU -------------------------------------------------------------------------------


class Join(_Message):
    type: Literal["join"]
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    meeting_key: str = Field(max_length=64)


class Publish(_Message):
    """One source's media (sendonly). A screen: the organizer's or a presenter's, one at a time."""

    type: Literal["publish"]
    sdp: Sdp
    source: Source = "camera"


class Unshare(_Message):
    """The sender stops sharing their screen."""

    type: Literal["unshare"]


class SubscribeAnswer(_Message):
    type: Literal["subscribe_answer"]
    publisher_id: str = Field(pattern=PARTICIPANT_ID)
    sdp: Sdp
    source: Source = "camera"


class Mute(_Message):
    """What the sender's own tracks are now (each absent: unchanged)."""

    type: Literal["mute"]
    audio: bool | None = None
    video: bool | None = None


class Record(_Message):
    type: Literal["record"]
    action: Literal["start", "stop"]
    grant: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)


class Chat(_Message):
    """A message to everyone (``to`` absent) or privately to one participant."""

    type: Literal["chat"]
    text: str = Field(min_length=1, max_length=MAX_CHAT_CHARS, pattern=r"\S")  # not only blanks
    to: str | None = Field(default=None, pattern=PARTICIPANT_ID)


class Hand(_Message):
    """Raise or lower one's own hand; the organizer may lower another's (``participant_id``)."""

    type: Literal["hand"]
    up: bool
    participant_id: str | None = Field(default=None, pattern=PARTICIPANT_ID)


class React(_Message):
    type: Literal["react"]
    emoji: Literal["👍", "👏", "😂", "❤️", "🎉", "😮"]


class Changed(_Message):
    """The sender changed shared content through the portal (a file shared, a document, a poll
    run or a vote): the others fetch that list again. Nothing else makes a page fetch."""

    type: Literal["changed"]
    what: Literal["files", "documents", "polls"]


class Moderate(_Message):
    """The organizer's action on one participant: mute their microphone, stop their camera or
    their screen share (they may turn either on again themselves: there is no remote unmute),
    make them a presenter or a participant again, or remove them (for the rest of the session;
    the session's lobby turns on, so a fresh join from them waits at the door)."""

    type: Literal["moderate"]
    action: Literal["mute", "stop_video", "stop_screen", "promote", "demote", "remove"]
    participant_id: str = Field(pattern=PARTICIPANT_ID)


class MuteAll(_Message):
    """The organizer mutes everyone else's microphone."""

    type: Literal["mute_all"]


class Lock(_Message):
    """The organizer locks the meeting (nobody new comes in) or opens it again."""

    type: Literal["lock"]
    locked: bool


class Lobby(_Message):
    """The organizer turns the session's lobby on (new people wait to be let in) or off."""

    type: Literal["lobby"]
    enabled: bool


class Admit(_Message):
    """The organizer or a presenter lets a waiting person in, or turns them away."""

    type: Literal["admit"]
    participant_id: str = Field(pattern=PARTICIPANT_ID)
    admit: bool


class Leave(_Message):
    type: Literal["leave"]


ClientMessage = Annotated[
    Join
    | Publish
    | Unshare
    | SubscribeAnswer
    | Mute
    | Record
    | Chat
    | Hand
    | React
    | Changed
    | Moderate
    | MuteAll
    | Lock
    | Lobby
    | Admit
    | Leave,
    Field(discriminator="type"),
]
_CLIENT: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class InvalidMessage(ValueError):
    """A browser's message that is not in the contract (its details are not echoed back)."""


def parse_client(data: Any) -> ClientMessage:
    """A browser's message (already decoded JSON), or ``InvalidMessage``."""
    try:
        return _CLIENT.validate_python(data)
    except ValidationError as exc:
        raise InvalidMessage("not a message of the contract") from exc


# --- MCU -> browser -------------------------------------------------------------------------------


class ParticipantInfo(_Message):
    id: str
    name: str
    role: Role
    audio: bool
    video: bool
    hand: bool = False
    screen: bool = False  # sharing their screen now
    reconnecting: bool = False  # their connection dropped: the MCU holds their place a few seconds


class ChatMessage(_Message):
    """A chat message as everyone it is for receives it (``to``: the one person, if private)."""

    type: Literal["chat_message"] = "chat_message"
    id: str
    sender: str
    name: str
    text: str
    to: str | None = None
    at: str  # ISO 8601, the MCU's time


class Joined(_Message):
    type: Literal["joined"] = "joined"
    participant_id: str
    role: Role
    participants: list[ParticipantInfo]
    ice_servers: list[dict[str, Any]]
    recording: bool
    chat: list[ChatMessage] = []  # the session's messages so far that are for this participant
    locked: bool = False
    lobby: bool = False  # new people wait at the door


class Waiting(_Message):
    id: str
    name: str


class LobbyWaiting(_Message):
    """To a person at the door: wait to be let in (nothing of the meeting reaches them)."""

    type: Literal["lobby_waiting"] = "lobby_waiting"
    participant_id: str


class LobbyState(_Message):
    """To the organizer and presenters: whether the lobby is on, and who waits (arrival order)."""

    type: Literal["lobby_state"] = "lobby_state"
    enabled: bool
    waiting: list[Waiting]


class LobbyRejected(_Message):
    """To a person turned away at the door, just before the MCU closes its socket."""

    type: Literal["lobby_rejected"] = "lobby_rejected"


class PublishAnswer(_Message):
    type: Literal["publish_answer"] = "publish_answer"
    sdp: str
    source: Source = "camera"


class SubscribeOffer(_Message):
    type: Literal["subscribe_offer"] = "subscribe_offer"
    publisher_id: str
    name: str
    sdp: str
    source: Source = "camera"


class ParticipantJoined(_Message):
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


class ParticipantUpdated(_Message):
    type: Literal["participant_updated"] = "participant_updated"
    participant: ParticipantInfo


class ParticipantLeft(_Message):
    type: Literal["participant_left"] = "participant_left"
    participant_id: str


class RecordingState(_Message):
    type: Literal["recording"] = "recording"
    active: bool


class Reaction(_Message):
    type: Literal["reaction"] = "reaction"
    participant_id: str
    emoji: str


class LockState(_Message):
    type: Literal["lock_state"] = "lock_state"
    locked: bool


class Removed(_Message):
    """To the removed participant, just before the MCU closes its socket."""

    type: Literal["removed"] = "removed"


class ContentChanged(_Message):
    type: Literal["content_changed"] = "content_changed"
    what: Literal["files", "documents", "polls"]
    participant_id: str


class VideoPaused(_Message):
    """To one subscriber: a person's video is paused for it, or flows again. Their audio goes on.
    ``reason``: ``link``, its link cannot take it as well as the streams before it; ``speakers``,
    the person is not among the last N who spoke (a large meeting)."""

    type: Literal["video_paused"] = "video_paused"
    publisher_id: str
    source: Source = "camera"
    paused: bool
    reason: Literal["link", "speakers"] = "link"


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


ServerMessage = Annotated[
    Joined
    | LobbyWaiting
    | LobbyState
    | LobbyRejected
    | PublishAnswer
    | SubscribeOffer
    | ParticipantJoined
    | ParticipantUpdated
    | ParticipantLeft
    | RecordingState
    | ChatMessage
    | Reaction
    | ContentChanged
    | LockState
    | Removed
    | VideoPaused
    | Error,
    Field(discriminator="type"),
]


def error(code: ErrorCode) -> Error:
    return Error(code=code, message=ERROR_TEXT[code])


def wire(message: BaseModel) -> dict[str, Any]:
    """A message as it goes over the socket."""
    return message.model_dump(mode="json")


# --- what the page and the docs are built from --------------------------------------------------------

CLIENT_TYPES = (
    Join,
    Publish,
    Unshare,
    SubscribeAnswer,
    Mute,
    Record,
    Chat,
    Hand,
    React,
    Changed,
    Moderate,
    MuteAll,
    Lock,
    Lobby,
    Admit,
    Leave,
)
SERVER_TYPES = (
    Joined,
    LobbyWaiting,
    LobbyState,
    LobbyRejected,
    PublishAnswer,
    SubscribeOffer,
    ParticipantJoined,
    ParticipantUpdated,
    ParticipantLeft,
    RecordingState,
    ChatMessage,
    Reaction,
    ContentChanged,
    LockState,
    Removed,
    VideoPaused,
    Error,
)


def _type_name(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].annotation.__args__[0])  # type: ignore[union-attr]


def schema() -> dict[str, Any]:
    """The JSON Schema of both directions (``docs/signalling.schema.json``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "webmeeting signalling (page <-> MCU)",
        "client_to_mcu": TypeAdapter(ClientMessage).json_schema(),
        "mcu_to_client": TypeAdapter(ServerMessage).json_schema(),
        "error_text": ERROR_TEXT,
    }


def page_module() -> str:
    """The ES module the page imports: message type names and their fields, from the models."""

    def table(models: tuple[type[BaseModel], ...]) -> dict[str, list[str]]:
        return {_type_name(m): [f for f in m.model_fields if f != "type"] for m in models}

    client, server = table(CLIENT_TYPES), table(SERVER_TYPES)
    lines = [
        "// Generated from webmeeting/domain/signalling.py by `make signalling`: do not edit.",
        "// The message types of the page <-> MCU signalling, and each message's fields.",
        "",
        f"export const SEND = Object.freeze({json.dumps({k: k for k in client}, indent=2)});",
        "",
        f"export const RECEIVE = Object.freeze({json.dumps({k: k for k in server}, indent=2)});",
        "",
        f"export const FIELDS = Object.freeze({json.dumps(client | server, indent=2)});",
        "",
        f"export const ERROR_TEXT = Object.freeze({json.dumps(ERROR_TEXT, indent=2)});",
        "",
        f"export const REACTIONS = Object.freeze({json.dumps(list(REACTIONS), ensure_ascii=False)});",
        "",
        f"export const MAX_CHAT_CHARS = {MAX_CHAT_CHARS};",
        "",
        "/** A message to the MCU: its type must be one of SEND, its fields exactly the contract's. */",
        "export function message(type, fields = {}) {",
        "  if (!(type in SEND)) throw new Error(`not a signalling message: ${type}`);",
        "  const extra = Object.keys(fields).filter((f) => !FIELDS[type].includes(f));",
        "  if (extra.length) throw new Error(`${type} has no field ${extra.join(', ')}`);",
        "  return JSON.stringify({ type, ...fields });",
        "}",
        "",
    ]
    return "\n".join(lines)
