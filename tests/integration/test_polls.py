"""Polls: the organizer manages and runs them, everyone votes once, results for all, a PDF."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import InMeeting, assert_error, ext, join_meeting, quick_links, wait_session_count
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration
POLL = {"question": "Ship on Friday?", "options": ["Yes", "No", "Next week"]}


class Api:
    def __init__(self, platform: Platform, token: str) -> None:
        self.base = platform.endpoints["portal"] + "/api/meet/v1"
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.base + path, json=body, headers=self.headers, timeout=10)


@pytest.fixture
def people(platform: Platform, pbx: PbxClient) -> tuple[dict[str, Any], dict[str, Any], str]:
    key, secret = quick_links(pbx)
    return join_meeting(platform, key, "Ada", secret), join_meeting(platform, key, "Grace"), key


def test_a_poll_is_created_run_voted_once_and_reported(platform: Platform, pbx: PbxClient, people: Any) -> None:
    organizer, participant, key = people
    org, par = Api(platform, organizer["token"]), Api(platform, participant["token"])
    created = org("POST", "/polls", POLL)
    assert created.status_code == 201, created.text
    poll_id = created.json()["id"]
    assert [p["question"] for p in org("GET", "/polls").json()["polls"]] == ["Ship on Friday?"]
    assert_error(org("POST", f"/polls/{poll_id}/run"), 409, "conflict")  # nobody in the meeting yet

    meeting = InMeeting([organizer, participant], key)
    try:
        wait_session_count(key, 2)
        run_id = org("POST", f"/polls/{poll_id}/run").json()["run_id"]
        assert par("POST", f"/runs/{run_id}/vote", {"option": 2}).status_code == 204
        assert_error(par("POST", f"/runs/{run_id}/vote", {"option": 0}), 409, "conflict")  # once
        assert_error(par("POST", f"/runs/{run_id}/vote", {"option": 3}), 400, "invalid_request")
        assert_error(par("POST", f"/runs/{run_id}/vote", {"option": "1"}), 400, "invalid_request")
        assert org("POST", f"/runs/{run_id}/vote", {"option": 0}).status_code == 204
        for api, mine in ((org, 0), (par, 2)):
            (run,) = api("GET", "/runs").json()["runs"]
            assert [r["votes"] for r in run["results"]] == [1, 0, 1] and run["voters"] == 2 and run["my_vote"] == mine
        report = org("GET", f"/runs/{run_id}/report.pdf")
        assert (
            report.status_code == 200
            and report.headers["Content-Type"] == "application/pdf"
            and report.content.startswith(b"%PDF")
        )
        assert_error(par("GET", f"/runs/{run_id}/report.pdf"), 403, "organizer_only")
    finally:
        meeting.close()


def test_participants_cannot_manage_polls_and_nothing_is_stored(platform: Platform, pbx: PbxClient, people: Any) -> None:
    organizer, participant, _ = people
    par = Api(platform, participant["token"])
    for method, path, body in (
        ("GET", "/polls", None),
        ("POST", "/polls", POLL),
        ("PUT", "/polls/abcdefghij", POLL),
        ("DELETE", "/polls/abcdefghij", None),
        ("POST", "/polls/abcdefghij/run", None),
    ):
        assert_error(par(method, path, body), 403, "organizer_only")
    assert list(fs.client().collection("polls").stream()) == []


@pytest.mark.parametrize(
    "body",
    [
        {"question": "Q", "options": ["only one"]},
        {"question": "", "options": ["a", "b"]},
        {"question": "Q", "options": ["a", "b"], "extra": 1},
        {"question": "Q", "options": [1, 2]},
    ],
)
def test_invalid_polls_are_400(platform: Platform, people: Any, body: dict[str, Any]) -> None:
    org = Api(platform, people[0]["token"])
    assert_error(org("POST", "/polls", body), 400, "invalid_request")
    assert list(fs.client().collection("polls").stream()) == []


@pytest.mark.retention("polls")
def test_polls_are_edited_deleted_and_go_with_their_extension(platform: Platform, pbx: PbxClient, people: Any) -> None:
    org = Api(platform, people[0]["token"])
    first = org("POST", "/polls", POLL).json()["id"]
    assert (
        org("PUT", f"/polls/{first}", {"question": "Ship Monday?", "options": ["Yes", "No"]}).json()["question"] == "Ship Monday?"
    )
    assert org("DELETE", f"/polls/{first}").status_code == 204
    assert_error(org("DELETE", f"/polls/{first}"), 404, "not_found")
    org("POST", "/polls", POLL)
    assert len(list(fs.client().collection("polls").stream())) == 1
    pbx.sync([ext("102")])  # extension 101 is gone from the PBX
    assert list(fs.client().collection("polls").stream()) == []
