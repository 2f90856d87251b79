"""PDF share: the organizer's documents stay after the session, until the meeting is deleted."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

from infra.launcher import FILES_BUCKET, Platform
from infra.pbx_client import PbxClient
from tests.helpers import InMeeting, assert_error, ext, join_meeting, meeting, wait_session_count
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage

pytestmark = pytest.mark.integration
PDF = b"%PDF-1.4\n" + secrets.token_bytes(3000) + b"\ntrailer\n%%EOF\n"


def _call(platform: Platform, token: str, method: str, path: str = "", data: bytes | None = None) -> requests.Response:
    return requests.request(
        method,
        platform.endpoints["portal"] + "/api/meet/v1/pdfs" + path,
        data=data,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


@pytest.fixture
def scheduled(platform: Platform, pbx: PbxClient) -> tuple[str, str, str]:
    pbx.sync([ext("101")])
    body = pbx.put_meeting("m-pdf", meeting("101")).json()
    key, secret = body["meeting_key"], body["organizer_url"].split("#organizer=")[1]
    return key, join_meeting(platform, key, organizer_secret=secret)["token"], join_meeting(platform, key)["token"]


@pytest.mark.retention("shared_pdfs")
def test_a_shared_pdf_is_listed_to_everyone_and_deleted_with_the_meeting(
    platform: Platform, pbx: PbxClient, scheduled: Any
) -> None:
    key, organizer, participant = scheduled
    shared = _call(platform, organizer, "POST", data=PDF)
    assert shared.status_code == 201, shared.text
    obj = f"pdfs/{shared.json()['id']}"
    assert _call(platform, organizer, "GET").json()["pdfs"]  # the organizer prepares them before the meeting
    assert_error(_call(platform, participant, "GET"), 403, "not_connected")  # a token alone sees nothing
    grace = join_meeting(platform, key, "Grace")
    in_meeting = InMeeting([grace], key)
    try:
        wait_session_count(key, 1)
        (listed,) = _call(platform, grace["token"], "GET").json()["pdfs"]
    finally:
        in_meeting.close()
    wait_session_count(key, 0)
    assert listed["label"] == "shared-document-1.pdf" and requests.get(listed["url"], timeout=10).content == PDF
    assert storage.exists(FILES_BUCKET, obj)  # a session's end leaves documents, unlike shared files
    assert pbx.delete_meeting("m-pdf").status_code == 204
    assert not storage.exists(FILES_BUCKET, obj)
    assert list(fs.client().collection("pdfs").stream()) == []


@pytest.mark.retention("shared_pdfs")
def test_pdfs_go_when_their_extension_goes(platform: Platform, pbx: PbxClient, scheduled: Any) -> None:
    _, organizer, _ = scheduled
    obj = f"pdfs/{_call(platform, organizer, 'POST', data=PDF).json()['id']}"
    pbx.sync([ext("102")])
    assert not storage.exists(FILES_BUCKET, obj)


@pytest.mark.parametrize(
    ("who", "data", "status", "code"),
    [
        ("participant", PDF, 403, "organizer_only"),
        ("organizer", b"PK\x03\x04 this is a zip", 400, "invalid_request"),
        ("organizer", b"%PDF-1.4 truncated without an end", 400, "invalid_request"),
        ("organizer", b"", 400, "invalid_request"),
    ],
)
def test_bad_pdfs_are_refused_and_store_nothing(
    platform: Platform, scheduled: Any, who: str, data: bytes, status: int, code: str
) -> None:
    _, organizer, participant = scheduled
    before = sorted(b.name for b in storage.client().list_blobs(FILES_BUCKET))
    assert_error(_call(platform, organizer if who == "organizer" else participant, "POST", data=data), status, code)
    assert sorted(b.name for b in storage.client().list_blobs(FILES_BUCKET)) == before
    assert list(fs.client().collection("pdfs").stream()) == []
