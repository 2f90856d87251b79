"""Which mails a meeting change sends (pure).

- created with ``send_invitations``: an invitation to every participant;
- updated: an invitation to participants added since; an update to the others when the time
  or duration changed; a cancellation to participants removed;
- deleted: a cancellation to everyone who was invited.
Recipients are compared case-insensitively by email. Planning happens once per accepted
request (nonces make requests unique); the outbox gives each planned mail an id, and a task
delivered twice finds its mail already sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

INVITE, UPDATE, CANCEL = "invite", "update", "cancel"


@dataclass(frozen=True)
class Mail:
    kind: str  # invite | update | cancel
    email: str
    name: str


def _by_email(participants: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(p["email"]).lower(): p for p in participants}


def schedule_version(meeting: Mapping[str, Any]) -> str:
    """Identifies the meeting's time: a new version means an update mail is due."""
    return f"{meeting['scheduled_start'].isoformat()}/{meeting['duration_minutes']}"


def plan_mails(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Mail]:
    """Mails due for ``old`` -> ``new`` (None: the meeting did not exist / was deleted)."""
    was_inviting = bool(old and old.get("send_invitations"))
    inviting = bool(new and new.get("send_invitations"))
    before = _by_email(old.get("participants", [])) if was_inviting and old else {}
    after = _by_email(new.get("participants", [])) if inviting and new else {}
    mails: list[Mail] = []
    if new is not None:
        version = schedule_version(new)
        for email, p in after.items():
            if email not in before:
                mails.append(Mail(INVITE, str(p["email"]), str(p["name"])))
            elif old is not None and schedule_version(old) != version:
                mails.append(Mail(UPDATE, str(p["email"]), str(p["name"])))
    for email, p in before.items():
        if email not in after:
            mails.append(Mail(CANCEL, str(p["email"]), str(p["name"])))
    return mails
