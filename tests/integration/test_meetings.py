"""PUT/DELETE /meetings/{id} and the meeting links."""

from __future__ import annotations

import base64

import pytest
import requests

from infra.pbx_client import PbxClient
from tests.helpers import assert_error, dump_firestore, ext, meeting, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(pbx: PbxClient) -> PbxClient:
    assert pbx.sync([ext("101", vanity="ada"), ext("102"), ext("103", email="")]).status_code == 200
    return pbx


def test_create_then_update_keeps_the_key_and_links(synced: PbxClient) -> None:
    created = synced.put_meeting("m-1", meeting("101"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert len(base64.urlsafe_b64decode(body["meeting_key"] + "==")) * 8 >= 96
    assert body["url"].endswith(f"/meet/{body['meeting_key']}")
    assert body["vanity_url"].endswith("/meet/ada/quarterly-review")
    page = requests.get(body["url"], timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "Quarterly review" in page.text and "Set-Cookie" not in page.headers
    updated = synced.put_meeting("m-1", meeting("101", name="Renamed", duration_minutes=30))
    assert updated.status_code == 200 and updated.json() == body
    assert "Renamed" in requests.get(body["vanity_url"], timeout=10).text


def test_vanity_slugs_are_unique_and_absent_without_a_vanity_name(synced: PbxClient) -> None:
    a = synced.put_meeting("a", meeting("101")).json()
    b = synced.put_meeting("b", meeting("101")).json()
    assert a["vanity_url"] != b["vanity_url"] and b["vanity_url"].endswith("quarterly-review-2")
    assert synced.put_meeting("c", meeting("102")).json()["vanity_url"] is None


def test_keys_are_unguessable_and_distinct(synced: PbxClient) -> None:
    keys = {synced.put_meeting(f"k{i}", meeting("102")).json()["meeting_key"] for i in range(10)}
    assert len(keys) == 10


def test_delete_removes_the_meeting_and_its_links(synced: PbxClient) -> None:
    body = synced.put_meeting("m-1", meeting("101")).json()
    assert synced.delete_meeting("m-1").status_code == 204
    assert requests.get(body["url"], timeout=10).status_code == 404
    assert requests.get(body["vanity_url"], timeout=10).status_code == 404
    wait_for("the deleted meeting's purge task", lambda: not any(k.startswith("meeting_purges/") for k in dump_firestore()))
    before = dump_firestore()
    assert_error(synced.delete_meeting("m-1"), 404, "not_found")
    assert dump_firestore() == before


@pytest.mark.parametrize(
    "override",
    [
        {"organizer": "999"},
        {"organizer": "103"},  # disabled: no email
        {"duration_minutes": 0},
        {"duration_minutes": 24 * 60 + 1},
        {"scheduled_start": "2026-12-01T09:00:00+02:00"},
        {"scheduled_start": "tomorrow"},
        {"name": ""},
        {"participants": [{"name": "x", "email": "nope"}]},
        {"send_invitations": "yes"},
        {"unknown": 1},
    ],
)
def test_invalid_meetings_are_400_and_change_nothing(synced: PbxClient, override: dict) -> None:  # type: ignore[type-arg]
    before = dump_firestore()
    assert_error(synced.put_meeting("m-1", {**meeting("101"), **override}), 400, "invalid_request")
    assert dump_firestore() == before


def test_invalid_meeting_ids_are_400(synced: PbxClient) -> None:
    assert_error(synced.put_meeting("x" * 65, meeting("101")), 400, "invalid_request")


def test_unknown_meeting_links_are_404(api: str, platform) -> None:  # type: ignore[no-untyped-def]
    portal = platform.endpoints["portal"]
    for path in ("/meet/AAAAAAAAAAAAAAAAAAAAAA", "/meet/nobody/nothing", "/meet/", "/meet/a/b/c"):
        resp = requests.get(portal + path, timeout=10)
        assert resp.status_code == 404 and "Traceback" not in resp.text
