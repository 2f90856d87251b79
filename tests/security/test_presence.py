"""Outside in: a token from /join is not presence. Listing and downloading files, documents,
poll results, voting, dial-in and recording need a connection an MCU has confirmed; a full
meeting takes back only people it has seen, whatever rejoin secret a newcomer makes up."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from infra.launcher import Platform
from tests.helpers import InMeeting, assert_error, dump_firestore, ext, join_meeting, meeting, new_pbx, wait_session_count
from webmeeting.services.licenses import add_license

pytestmark = pytest.mark.integration


def _api(platform: Platform, token: str, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{platform.endpoints['portal']}/api/meet/v1{path}", headers=headers, timeout=10, **kw)


@pytest.fixture
def running(platform: Platform, api: str, license_key: str) -> Any:
    """A meeting with its organizer and one participant connected, a poll running."""
    pbx = new_pbx(api, license_key)
    pbx.sync([ext("101")])
    body = pbx.put_meeting("m-presence", meeting("101")).json()
    key, secret = body["meeting_key"], body["organizer_url"].split("#organizer=")[1]
    organizer, grace = join_meeting(platform, key, "Ada", secret), join_meeting(platform, key, "Grace")
    held = InMeeting([organizer, grace], key)
    wait_session_count(key, 2)
    poll = _api(platform, organizer["token"], "POST", "/polls", json={"question": "Ship?", "options": ["Yes", "No"]}).json()
    run_id = _api(platform, organizer["token"], "POST", f"/polls/{poll['id']}/run").json()["run_id"]
    shared = _api(platform, grace["token"], "POST", "/files?ext=txt", data=b"minutes")
    assert shared.status_code == 201, shared.text
    yield key, secret, organizer, grace, run_id
    held.close()


def test_a_token_without_a_connection_sees_and_changes_nothing(platform: Platform, running: Any) -> None:
    key, secret, _, _, run_id = running
    listener = join_meeting(platform, key, "Invisible")  # a token, never connected to the MCU
    lurking_organizer = join_meeting(platform, key, "Ada again", secret)
    before = dump_firestore()
    for method, path, kw in (
        ("GET", "/files", {}),
        ("POST", "/files?ext=txt", {"data": b"spam"}),
        ("GET", "/pdfs", {}),
        ("GET", "/runs", {}),
        ("POST", f"/runs/{run_id}/vote", {"json": {"option": 1}}),
    ):
        assert_error(_api(platform, listener["token"], method, path, **kw), 403, "not_connected")
    assert_error(_api(platform, lurking_organizer["token"], "GET", "/dialin"), 403, "not_connected")
    assert_error(_api(platform, lurking_organizer["token"], "POST", "/recording", json={"action": "start"}), 403, "not_connected")
    after = dump_firestore()
    assert {k: v for k, v in after.items() if k != "sessions"} == {k: v for k, v in before.items() if k != "sessions"}


def test_one_client_minting_ids_casts_no_extra_votes(platform: Platform, running: Any) -> None:
    key, _, organizer, grace, run_id = running
    assert _api(platform, grace["token"], "POST", f"/runs/{run_id}/vote", json={"option": 0}).status_code == 204
    minted = [join_meeting(platform, key, f"Sock {n}") for n in range(20)]
    refused = [_api(platform, m["token"], "POST", f"/runs/{run_id}/vote", json={"option": 1}).status_code for m in minted]
    assert refused == [403] * 20
    assert_error(_api(platform, grace["token"], "POST", f"/runs/{run_id}/vote", json={"option": 1}), 409, "conflict")  # once
    (run,) = _api(platform, organizer["token"], "GET", "/runs").json()["runs"]
    assert [r["votes"] for r in run["results"]] == [1, 0] and run["voters"] == 1


def test_a_full_meeting_refuses_newcomers_with_made_up_rejoin_secrets(platform: Platform, api: str) -> None:
    small = add_license(edition="small", expires_at=datetime.now(UTC) + timedelta(days=1), max_participants=2, recording=False)
    pbx = new_pbx(api, small.key, "full.example.com")
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    people = [join_meeting(platform, key, "Ada"), join_meeting(platform, key, "Grace")]
    held = InMeeting(people, key)
    try:
        wait_session_count(key, 2)
        url = platform.endpoints["portal"] + "/api/meet/v1/join"
        for made_up in (secrets.token_urlsafe(16), "x" * 22, people[0]["participant_id"]):
            body = {"meeting_key": key, "display_name": "Mallory", "rejoin_secret": made_up}
            assert_error(requests.post(url, json=body, timeout=10), 403, "meeting_full")
        # someone the session has seen comes back (a reconnect) with their own secret
        back = {"meeting_key": key, "display_name": "Ada", "rejoin_secret": people[0]["rejoin_secret"]}
        again = requests.post(url, json=back, timeout=10)
        assert again.status_code == 200 and again.json()["participant_id"] == people[0]["participant_id"]
    finally:
        held.close()
