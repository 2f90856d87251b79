"""File share: random names in Storage, signed downloads, gone when the session ends."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

from infra.launcher import FILES_BUCKET, Platform
from infra.pbx_client import PbxClient
from tests.helpers import InMeeting, assert_error, ext, join_meeting, wait_session_count
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage

pytestmark = pytest.mark.integration
PDF = b"%PDF-1.4\n" + secrets.token_bytes(5000) + b"\n%%EOF\n"


def _upload(platform: Platform, token: str, name: str, data: bytes) -> requests.Response:
    ext = name.rsplit(".", 1)[-1]  # what the page sends: the extension, never the name
    return requests.post(
        f"{platform.endpoints['portal']}/api/meet/v1/files",
        params={"ext": ext},
        data=data,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def quick_key(pbx: PbxClient) -> str:
    return str(pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1])


def test_shared_files_download_intact_and_vanish_when_everyone_leaves(platform: Platform, quick_key: str) -> None:
    ada, grace = join_meeting(platform, quick_key, "Ada"), join_meeting(platform, quick_key, "Grace")
    meeting = InMeeting([ada, grace], quick_key)
    try:
        wait_session_count(quick_key, 2)
        up = _upload(platform, ada["token"], "Quarterly numbers (secret).pdf", PDF)
        assert up.status_code == 201, up.text
        assert up.json()["label"] == "shared-file-1.pdf"
        listed = requests.get(
            f"{platform.endpoints['portal']}/api/meet/v1/files", headers={"Authorization": f"Bearer {grace['token']}"}, timeout=10
        ).json()["files"]
        assert [f["label"] for f in listed] == ["shared-file-1.pdf"]
        assert "X-Goog-Signature=" in listed[0]["url"] and "X-Goog-Expires=300" in listed[0]["url"]
        download = requests.get(listed[0]["url"], timeout=10)
        assert download.status_code == 200 and download.content == PDF
        objects = [b.name for b in storage.client().list_blobs(FILES_BUCKET)]
        assert f"files/{up.json()['id']}" in objects and not [o for o in objects if "Quarterly" in o]
        assert len(up.json()["id"]) >= 32  # 192 random bits, URL-safe
        assert not [d for d in (fs.data(s) for s in fs.client().collection("files").stream()) if "Quarterly" in str(d)]
    finally:
        meeting.close()
    wait_session_count(quick_key, 0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and storage.exists(FILES_BUCKET, f"files/{up.json()['id']}"):
        time.sleep(0.2)
    assert not storage.exists(FILES_BUCKET, f"files/{up.json()['id']}")
    assert list(fs.client().collection("files").stream()) == []


@pytest.mark.parametrize(
    ("name", "data", "status", "fragment"),
    [
        ("tool.exe", b"MZ\x90\x00", 400, "cannot be shared"),
        ("fake.pdf", b"MZ\x90\x00not a pdf", 400, "not a .pdf"),
        ("empty.txt", b"", 400, "empty"),
        ("binary.txt", b"abc\x00def", 400, "not a .txt"),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(
    platform: Platform, quick_key: str, name: str, data: bytes, status: int, fragment: str
) -> None:
    ada = join_meeting(platform, quick_key, "Ada")
    meeting = InMeeting([ada], quick_key)
    try:
        wait_session_count(quick_key, 1)
        before = sorted(b.name for b in storage.client().list_blobs(FILES_BUCKET))
        err = assert_error(_upload(platform, ada["token"], name, data), status, "invalid_request")
        assert fragment in err["message"]
        assert sorted(b.name for b in storage.client().list_blobs(FILES_BUCKET)) == before
        assert list(fs.client().collection("files").stream()) == []
    finally:
        meeting.close()


def test_upload_rules_without_a_running_session_or_token(platform: Platform, quick_key: str) -> None:
    ada = join_meeting(platform, quick_key, "Ada")
    assert_error(_upload(platform, ada["token"], "a.txt", b"hello"), 403, "not_connected")  # a token alone shares nothing
    assert_error(_upload(platform, "forged", "a.txt", b"hello"), 401, "unauthenticated")


def test_an_oversized_upload_is_413(platform: Platform, quick_key: str) -> None:
    ada = join_meeting(platform, quick_key, "Ada")
    assert_error(_upload(platform, ada["token"], "big.txt", b"x" * (25 * 1024 * 1024 + 1)), 413, "too_large")


def test_uploads_sweep_leftovers_of_inactive_sessions(platform: Platform, quick_key: str) -> None:
    storage.put(FILES_BUCKET, "files/leftover-of-a-crashed-session", b"old", "text/plain", "x.txt")
    fs.client().collection("files").document("leftover-of-a-crashed-session").set(
        {
            "meeting_key": "gone-meeting-key-000000",
            "session_id": "0" * 16,
            "object": "files/leftover-of-a-crashed-session",
            "label": "x.txt",
            "content_type": "text/plain",
            "size": 3,
            "shared_by": "x",
            "created_at": time.time(),
        }
    )
    ada = join_meeting(platform, quick_key, "Ada")
    meeting = InMeeting([ada], quick_key)
    try:
        wait_session_count(quick_key, 1)
        assert _upload(platform, ada["token"], "notes.txt", b"hello").status_code == 201
    finally:
        meeting.close()
    assert not storage.exists(FILES_BUCKET, "files/leftover-of-a-crashed-session")
