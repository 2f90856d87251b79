// Generated from webmeeting/domain/signalling.py by `make signalling`: do not edit.
// The message types of the page <-> MCU signalling, and each message's fields.

export const SEND = Object.freeze({
  "join": "join",
  "publish": "publish",
  "unshare": "unshare",
  "subscribe_answer": "subscribe_answer",
  "mute": "mute",
  "record": "record",
  "chat": "chat",
  "hand": "hand",
  "react": "react",
  "changed": "changed",
  "moderate": "moderate",
  "mute_all": "mute_all",
  "lock": "lock",
  "lobby": "lobby",
  "admit": "admit",
  "leave": "leave"
});

export const RECEIVE = Object.freeze({
  "joined": "joined",
  "lobby_waiting": "lobby_waiting",
  "lobby_state": "lobby_state",
  "lobby_rejected": "lobby_rejected",
  "publish_answer": "publish_answer",
  "subscribe_offer": "subscribe_offer",
  "participant_joined": "participant_joined",
  "participant_updated": "participant_updated",
  "participant_left": "participant_left",
  "recording": "recording",
  "chat_message": "chat_message",
  "reaction": "reaction",
  "content_changed": "content_changed",
  "lock_state": "lock_state",
  "removed": "removed",
  "video_paused": "video_paused",
  "error": "error"
});

export const FIELDS = Object.freeze({
  "join": [
    "token",
    "meeting_key"
  ],
  "publish": [
    "sdp",
    "source"
  ],
  "unshare": [],
  "subscribe_answer": [
    "publisher_id",
    "sdp",
    "source"
  ],
  "mute": [
    "audio",
    "video"
  ],
  "record": [
    "action",
    "grant"
  ],
  "chat": [
    "text",
    "to"
  ],
  "hand": [
    "up",
    "participant_id"
  ],
  "react": [
    "emoji"
  ],
  "changed": [
    "what"
  ],
  "moderate": [
    "action",
    "participant_id"
  ],
  "mute_all": [],
  "lock": [
    "locked"
  ],
  "lobby": [
    "enabled"
  ],
  "admit": [
    "participant_id",
    "admit"
  ],
  "leave": [],
  "joined": [
    "participant_id",
    "role",
    "participants",
    "ice_servers",
    "recording",
    "chat",
    "locked",
    "lobby"
  ],
  "lobby_waiting": [
    "participant_id"
  ],
  "lobby_state": [
    "enabled",
    "waiting"
  ],
  "lobby_rejected": [],
  "publish_answer": [
    "sdp",
    "source"
  ],
  "subscribe_offer": [
    "publisher_id",
    "name",
    "sdp",
    "source"
  ],
  "participant_joined": [
    "participant"
  ],
  "participant_updated": [
    "participant"
  ],
  "participant_left": [
    "participant_id"
  ],
  "recording": [
    "active"
  ],
  "chat_message": [
    "id",
    "sender",
    "name",
    "text",
    "to",
    "at"
  ],
  "reaction": [
    "participant_id",
    "emoji"
  ],
  "content_changed": [
    "what",
    "participant_id"
  ],
  "lock_state": [
    "locked"
  ],
  "removed": [],
  "video_paused": [
    "publisher_id",
    "source",
    "paused",
    "reason"
  ],
  "error": [
    "code",
    "message"
  ]
});

export const ERROR_TEXT = Object.freeze({
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
  "rejected": "the organizer did not let you in"
});

export const REACTIONS = Object.freeze(["👍", "👏", "😂", "❤️", "🎉", "😮"]);

export const MAX_CHAT_CHARS = 1000;

/** A message to the MCU: its type must be one of SEND, its fields exactly the contract's. */
export function message(type, fields = {}) {
  if (!(type in SEND)) throw new Error(`not a signalling message: ${type}`);
  const extra = Object.keys(fields).filter((f) => !FIELDS[type].includes(f));
  if (extra.length) throw new Error(`${type} has no field ${extra.join(', ')}`);
  return JSON.stringify({ type, ...fields });
}
