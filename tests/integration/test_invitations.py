"""Invitation, update and cancellation mails through Cloud Tasks to the local SMTP server."""

from __future__ import annotations

import os
import secrets
import signal
import time
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import icalendar
import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import assert_error, ext, inbox, join_meeting, meeting, quick_links

pytestmark = pytest.mark.integration
MAIL_TIMEOUT_S = 30


def wait_mail(platform: Platform, to: str, count: int) -> list[Message]:
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while time.monotonic() < deadline:
        got = inbox(platform, to)
        if len(got) >= count:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{to}: {len(inbox(platform, to))} mails, expected {count}")


def event_of(msg: Message) -> tuple[str, icalendar.Event]:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    cal = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    return str(cal["method"]), next(iter(cal.walk("VEVENT")))


def text_of(msg: Message) -> str:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    return str(part.get_payload(decode=True).decode())


@pytest.fixture
def people() -> list[dict[str, str]]:
    tag = secrets.token_hex(4)
    return [
        {"name": "Grace Hopper", "email": f"grace-{tag}@example.org"},
        {"name": "Alan Turing", "email": f"alan-{tag}@example.org"},
    ]


def test_invitation_update_and_cancellation(platform: Platform, pbx: PbxClient, people: list[dict[str, str]]) -> None:
    pbx.sync([ext("101", first="Ada", last="Lovelace")])
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    body = meeting("101", participants=people, send_invitations=True, scheduled_start=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    created = pbx.put_meeting("m-mail", body)
    assert created.status_code == 201
    url = created.json()["url"]

    for person in people:
        (msg,) = wait_mail(platform, person["email"], 1)
        assert msg["Subject"] == "Invitation: Quarterly review"
        text = text_of(msg)
        assert person["name"] in text and "Agenda attached" in text and url in text and "Ada Lovelace" in text
        assert start.strftime("%H:%M UTC") in text
        method, event = event_of(msg)
        assert method == "REQUEST" and str(event["summary"]) == "Quarterly review"
        assert event.decoded("dtstart") == start and event.decoded("dtend") == start + timedelta(minutes=60)
        assert str(event["attendee"]) == f"mailto:{person['email']}" and url in str(event["url"])

    moved = start + timedelta(hours=1)
    assert pbx.put_meeting("m-mail", {**body, "scheduled_start": moved.strftime("%Y-%m-%dT%H:%M:%SZ")}).status_code == 200
    for person in people:
        first, update = wait_mail(platform, person["email"], 2)
        assert update["Subject"] == "Updated: Quarterly review"
        method, event = event_of(update)
        assert method == "REQUEST" and event.decoded("dtstart") == moved
        assert int(event["sequence"]) >= int(event_of(first)[1]["sequence"])
        assert str(event["uid"]) == str(event_of(first)[1]["uid"])  # the same calendar entry

    assert pbx.put_meeting("m-mail", {**body, "scheduled_start": moved.strftime("%Y-%m-%dT%H:%M:%SZ")}).status_code == 200
    assert pbx.delete_meeting("m-mail").status_code == 204
    for person in people:
        mails = wait_mail(platform, person["email"], 3)
        assert len(mails) == 3  # the unchanged re-PUT sent nothing
        cancel = mails[-1]
        assert cancel["Subject"] == "Cancelled: Quarterly review"
        method, event = event_of(cancel)
        assert method == "CANCEL" and str(event["status"]) == "CANCELLED"


def test_no_mail_without_send_invitations(platform: Platform, pbx: PbxClient, people: list[dict[str, str]]) -> None:
    pbx.sync([ext("101")])
    assert pbx.put_meeting("quiet", meeting("101", participants=people, send_invitations=False)).status_code == 201
    assert pbx.delete_meeting("quiet").status_code == 204
    time.sleep(2)
    assert inbox(platform, people[0]["email"]) == []


def test_smtp_down_for_a_while_delivers_once_when_it_returns(
    platform: Platform, pbx: PbxClient, people: list[dict[str, str]]
) -> None:
    pbx.sync([ext("101")])
    smtp = next(p for p in platform.procs if p.name == "smtp")
    port = platform.endpoints["smtp"]["port"]
    os.killpg(smtp.popen.pid, signal.SIGTERM)
    smtp.popen.wait(timeout=10)
    platform.procs.remove(smtp)
    try:
        assert pbx.put_meeting("m-down", meeting("101", participants=people[:1], send_invitations=True)).status_code == 201
        time.sleep(5)  # a few attempts fail meanwhile
        assert inbox(platform, people[0]["email"]) == []
    finally:
        platform.start_smtp(port)
    (msg,) = wait_mail(platform, people[0]["email"], 1)
    time.sleep(3)
    again = inbox(platform, people[0]["email"])
    assert [m["X-Webmeeting-Mail-Id"] for m in again] == [msg["X-Webmeeting-Mail-Id"]]  # exactly once


def test_the_organizer_invites_from_inside_the_meeting(platform: Platform, pbx: PbxClient, people: list[dict[str, str]]) -> None:
    key, secret = quick_links(pbx, first="Ada", last="Lovelace")
    organizer, participant = join_meeting(platform, key, "Ada", secret), join_meeting(platform, key, "Grace")
    url = platform.endpoints["portal"] + "/api/meet/v1/invitations"

    def invite(token: str, body: Any) -> requests.Response:
        return requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    assert_error(invite(participant["token"], {"participants": people[:1]}), 403, "organizer_only")
    assert_error(invite(organizer["token"], {"participants": [{"name": "x", "email": "not-an-email"}]}), 400, "invalid_request")
    assert invite(organizer["token"], {"participants": people[:1]}).json() == {"invited": 1}
    assert invite(organizer["token"], {"participants": people[:1]}).json() == {"invited": 0}  # already invited
    (msg,) = wait_mail(platform, people[0]["email"], 1)
    assert msg["Subject"] == "Invitation: Ada Lovelace's meeting" and key in text_of(msg)
    assert event_of(msg)[0] == "REQUEST"


def test_a_mail_whose_task_was_lost_is_sent_by_the_sweep_once(platform: Platform) -> None:
    """The outbox's safety net: a pending mail no task will ever deliver (the enqueue failed)."""
    from webmeeting.adapters import firestore as fs

    now = datetime.now(UTC)
    start = now + timedelta(days=1)
    fs.client().collection("mails").document("f" * 32).set(
        {
            "status": "pending",
            "kind": "invite",
            "email": "lost-task@example.org",
            "name": "Lost Task",
            "meeting": {
                "name": "Planning",
                "comments": "",
                "start": start,
                "duration_minutes": 30,
                "url": "http://127.0.0.1/meet/x",
                "organizer_name": "Ada",
                "uid": "u@webmeeting",
                "sequence": 1,
                "stamp": now,
            },
            "meeting_key": "k" * 22,
            "pbx_id": "p1",
            "created_at": now - timedelta(minutes=11),
            "attempts": 0,
            "expire_at": now + timedelta(days=7),
        }
    )

    def sweep() -> dict[str, Any]:
        resp = requests.post(
            f"{platform.upstreams['tasks_api']}/tasks/v1/sessions-sweep",
            json={},
            headers={"X-Webmeeting-Task-Secret": platform.tasks_secret},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    assert sweep()["mails_requeued"] == 1
    wait_mail(platform, "lost-task@example.org", 1)
    time.sleep(1)
    assert sweep()["mails_requeued"] == 0
    assert len(inbox(platform, "lost-task@example.org")) == 1
