"""Outside in: an organizer link cannot turn the platform into a mailer. In-meeting invitations
are bounded per organizer and hour and per meeting, names are names, an email is one address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore, ext, join_meeting, meeting
from webmeeting.services.invitations import MEETING_INVITES_MAX, ORGANIZER_INVITES_PER_HOUR

pytestmark = pytest.mark.integration


def _people(start: int, count: int) -> list[dict[str, str]]:
    return [{"name": "Grace Hopper", "email": f"guest{n}@example.org"} for n in range(start, start + count)]


def _invite(platform: Platform, token: str, people: list[dict[str, str]]) -> requests.Response:
    return requests.post(
        f"{platform.endpoints['portal']}/api/meet/v1/invitations",
        json={"participants": people},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def organizer(platform: Platform, pbx: PbxClient) -> dict[str, Any]:
    pbx.sync([ext("101")])
    body = pbx.put_meeting("m-invite", meeting("101")).json()
    joined = join_meeting(platform, body["meeting_key"], "Ada", body["organizer_url"].split("#organizer=")[1])
    return {**joined, "meeting_key": body["meeting_key"]}


def _state(key: str) -> tuple[set[str], list[Any]]:
    """The outbox's mail ids and the meeting's participants (mails change status as they go out)."""
    dump = dump_firestore()
    mails = {k for k in dump if k.startswith("mails/")}
    return mails, dump[f"meetings/{key}"]["participants"]


def test_invitations_are_bounded_per_hour_and_per_meeting(
    platform: Platform, organizer: dict[str, Any], clock_file: Path
) -> None:
    token = organizer["token"]
    before = dump_firestore()
    _, listed = _state(organizer["meeting_key"])  # the PBX's own participants
    assert_error(_invite(platform, token, _people(0, ORGANIZER_INVITES_PER_HOUR + 1)), 429, "rate_limited")
    assert dump_firestore() == before  # nothing sent, nothing stored
    assert _invite(platform, token, _people(0, ORGANIZER_INVITES_PER_HOUR)).json() == {"invited": ORGANIZER_INVITES_PER_HOUR}
    held = _state(organizer["meeting_key"])
    # whoever is invited from the meeting is found by data-subject export and erasure
    assert "guest0@example.org" in dump_firestore()[f"meetings/{organizer['meeting_key']}"]["invitee_emails"]
    assert_error(_invite(platform, token, _people(100, 1)), 429, "rate_limited")
    assert _state(organizer["meeting_key"]) == held
    clock_file.write_text(str(3601))  # an hour later the organizer may invite again, up to the meeting's bound
    left = MEETING_INVITES_MAX - ORGANIZER_INVITES_PER_HOUR
    assert_error(_invite(platform, token, _people(200, left + 1)), 429, "rate_limited")
    assert _invite(platform, token, _people(200, left)).json() == {"invited": left}
    mails, participants = _state(organizer["meeting_key"])
    assert len(mails) == MEETING_INVITES_MAX and len(participants) == len(listed) + MEETING_INVITES_MAX


@pytest.mark.parametrize(
    "person",
    [
        {"name": "Grace", "email": "a@example.org, b@example.org"},
        {"name": "Grace", "email": "a,b@example.org"},
        {"name": "Grace", "email": "Grace <a@example.org>"},
        {"name": "Grace", "email": "a@example.org\r\nBcc: victim@example.org"},
        {"name": "Grace", "email": '"a b"@example.org'},
        {"name": "Win a prize at evil.com", "email": "a@example.org"},
        {"name": "Call +49 30 1234567", "email": "a@example.org"},
        {"name": "<a href=x>Grace</a>", "email": "a@example.org"},
        {"name": "Grace\r\nBcc: victim@example.org", "email": "a@example.org"},
    ],
)
def test_one_addr_spec_and_a_real_name_or_nothing(platform: Platform, organizer: dict[str, Any], person: dict[str, str]) -> None:
    before = dump_firestore()
    assert_error(_invite(platform, organizer["token"], [person]), 400, "invalid_request")
    assert dump_firestore() == before


def test_participants_cannot_invite(platform: Platform, organizer: dict[str, Any]) -> None:
    guest = join_meeting(platform, organizer["meeting_key"], "Mallory")
    before = dump_firestore()
    assert_error(_invite(platform, guest["token"], _people(0, 1)), 403, "organizer_only")
    assert dump_firestore() == before
