"""Outside in, the smaller holes: path tricks on assets, the page's connect-src, activation
conflicts that tell nothing, a deleted meeting that leaves nothing."""

from __future__ import annotations

import re

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import InMeeting, assert_error, ext, join_meeting, meeting, new_pbx, wait_for, wait_session_count
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "path", ["/assets/meeting.js%00.css", "/assets/%2e%2e/main.py", "/assets/..%2fmain.py", "/assets/meeting.js%0a", "/assets/"]
)
def test_asset_path_tricks_are_404(platform: Platform, path: str) -> None:
    resp = requests.get(platform.endpoints["portal"] + path, timeout=10)
    assert resp.status_code == 404, resp.status_code
    assert "Traceback" not in resp.text and "def " not in resp.text


def test_the_page_connects_only_to_the_registered_mcus(platform: Platform, pbx: PbxClient) -> None:
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    policy = requests.get(url, timeout=10).headers["Content-Security-Policy"]
    connect = re.search(r"connect-src ([^;]+)", policy)[1].split()  # type: ignore[index]
    assert "ws:" not in connect and "wss:" not in connect
    mcus = {m["url"].rsplit("/", 1)[0] for m in platform.endpoints["mcus"]}
    assert mcus <= set(connect) and all(c == "'self'" or c.startswith(("ws://", "http")) for c in connect)


def test_a_licensee_cannot_tell_whose_fqdn_is_bound(platform: Platform, api: str) -> None:
    keys = platform.endpoints["dev_license_keys"]
    new_pbx(api, keys[0], "taken.example.com")  # another customer's
    mine = PbxClient(api)
    other_fqdn = assert_error(mine.activate(keys[1], "taken.example.com", "meet.example.com"), 409, "conflict")
    assert PbxClient(api).activate(keys[1], "mine.example.com", "meet.mine.example.com").status_code == 201
    my_license_elsewhere = assert_error(PbxClient(api).activate(keys[1], "fresh.example.com", "m.example.com"), 409, "conflict")
    assert other_fqdn["message"] == my_license_elsewhere["message"]


def test_a_meeting_deleted_through_the_pbx_api_leaves_nothing(platform: Platform, pbx: PbxClient) -> None:
    pbx.sync([ext("101")])
    invited = {"participants": [{"name": "Grace Hopper", "email": "grace.purge@example.org"}], "send_invitations": True}
    body = pbx.put_meeting("m-gone", meeting("101", **invited)).json()
    key, secret = body["meeting_key"], body["organizer_url"].split("#organizer=")[1]
    organizer = join_meeting(platform, key, "Ada", secret)
    held = InMeeting([organizer], key)
    wait_session_count(key, 1)
    headers = {"Authorization": f"Bearer {organizer['token']}"}
    api = f"{platform.endpoints['portal']}/api/meet/v1"
    poll = requests.post(f"{api}/polls", json={"question": "Q?", "options": ["a", "b"]}, headers=headers, timeout=10).json()
    assert requests.post(f"{api}/polls/{poll['id']}/run", headers=headers, timeout=10).status_code == 201
    assert requests.post(f"{api}/files?ext=txt", data=b"notes", headers=headers, timeout=10).status_code == 201
    held.close()
    wait_session_count(key, 0)

    def remains() -> dict[str, int]:
        db = fs.client()
        out = {}
        for col in ("sessions", "participant_events", "poll_runs", "files", "recordings", "meeting_purges"):
            docs = [s for s in db.collection(col).stream() if s.id == key or fs.data(s).get("meeting_key") == key]
            out[col] = len(docs)
        return out

    assert remains()["participant_events"] >= 2 and remains()["poll_runs"] == 1
    assert pbx.delete_meeting("m-gone").status_code == 204
    wait_for("everything hanging on the meeting to go", lambda: not any(remains().values()), 30)
    assert requests.get(body["url"], timeout=10).status_code == 404
    # the cancellation still went out (undelivered mails are not purged with the rest)
    wait_for(
        "the cancellation",
        lambda: any(
            "grace.purge@example.org" in p.read_text(errors="replace") and "CANCEL" in p.read_text(errors="replace")
            for p in (platform.state_dir / "mail").glob("*.eml")
        ),
        30,
    )


@pytest.mark.parametrize("path", ["/assets/meeting.js", "/assets/vendor/pdf.min.mjs", "/assets/vendor/pdf.worker.min.mjs"])
def test_the_pages_own_assets_are_served(platform: Platform, path: str) -> None:
    assert requests.get(platform.endpoints["portal"] + path, timeout=10).status_code == 200
