"""Each Cloud Function in-process against the Firestore emulator: the contract's answers, the
route table's 404 / 405, the one error wrapper (the contract's error body, nothing written)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from infra.pbx_client import PbxClient
from tests.service.conftest import MCU_ID, MCU_SECRET, MCU_URL, FunctionClient, dump, join_token
from webmeeting.adapters import firestore as fs
from webmeeting.adapters.tasks import SECRET_HEADER
from webmeeting.domain.signing import signed_headers

pytestmark = pytest.mark.service

EXT = {"number": "101", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "vanity_name": "ada"}


def _meeting() -> dict[str, object]:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    return {
        "organizer": "101",
        "name": "Quarterly review",
        "comments": "",
        "scheduled_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_minutes": 30,
        "participants": [],
        "send_invitations": False,
    }


def _error(resp: object, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    assert resp.json()["error"]["code"] == code  # type: ignore[attr-defined]


def test_a_pbx_activates_syncs_and_creates_a_meeting(pbx: PbxClient) -> None:
    synced = pbx.sync([EXT])
    assert synced.status_code == 200, synced.text
    quick = synced.json()["extensions"][0]
    assert quick["enabled"] and quick["quick_meeting_url"].startswith("http://portal.test/meet/")
    created = pbx.put_meeting("m-1", _meeting())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["vanity_url"] == "http://portal.test/meet/ada/quarterly-review"
    assert "#organizer=" in body["organizer_url"]
    assert pbx.put_meeting("m-1", _meeting()).status_code == 200  # the same meeting: updated
    assert pbx.reports().json() == {"reports": []}
    stored = fs.data(fs.meetings().document(body["meeting_key"]).get())
    assert stored["pbx_meeting_id"] == "m-1" and stored["vanity_slug"] == "quarterly-review"


def test_refusals_use_the_contract_body_and_change_nothing(pbx: PbxClient) -> None:
    assert pbx.sync([EXT]).status_code == 200
    before = dump()
    _error(pbx.signed("PUT", "/sync", {"extensions": "nope"}), 400, "invalid_request")
    _error(pbx.put_meeting("m-1", {**_meeting(), "organizer": "999"}), 400, "invalid_request")
    _error(pbx.signed("PUT", "/sync", {"extensions": []}, headers={"X-Signature": "v1=" + "0" * 64}), 401, "unauthenticated")
    _error(pbx.signed("PUT", "/sync", raw=b"x" * (1024 * 1024 + 1)), 413, "too_large")
    _error(pbx.delete_meeting("never-made"), 404, "not_found")
    _error(pbx.signed("GET", "/reports?status=everything"), 400, "invalid_request")
    assert dump() == before


def test_a_replayed_request_is_refused(pbx: PbxClient) -> None:
    body = json.dumps({"extensions": [EXT]}).encode()
    headers = signed_headers(pbx.pbx_id, pbx.api_secret.encode(), "PUT", pbx.path_base + "/sync", body, int(time.time()))
    headers["Content-Type"] = "application/json"
    first = pbx.session.put(pbx.api_base + "/sync", data=body, headers=headers)
    assert first.status_code == 200, first.text
    _error(pbx.session.put(pbx.api_base + "/sync", data=body, headers=headers), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("target", "path", "method", "allow"),
    [
        ("pbx_api", "/api/pbx/v1/sync", "POST", "PUT"),
        ("pbx_api", "/api/pbx/v1/meetings/m-1", "POST", "DELETE, PUT"),
        ("meeting_api", "/api/meet/v1/join", "GET", "POST"),
        ("meeting_api", "/api/meet/v1/pdfs", "DELETE", "GET, POST"),
        ("mcu_api", "/api/mcu/v1/heartbeat", "GET", "POST"),
        ("tasks_api", "/tasks/v1/mail", "GET", "POST"),
        ("meeting_page", "/meet/abcdefghijklmnop", "POST", "GET, HEAD"),
    ],
)
def test_a_known_path_with_another_method_is_405(
    function: FunctionClient, target: str, path: str, method: str, allow: str
) -> None:
    resp = function(target).open(path, method=method)
    assert resp.status_code == 405 and resp.headers["Allow"] == allow
    assert json.loads(resp.data)["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("pbx_api", "/api/pbx/v1/nothing"),
        ("meeting_api", "/api/meet/v1/polls/short"),  # not an id
        ("mcu_api", "/api/mcu/v1/recordings/xyz/uploaded"),
        ("tasks_api", "/tasks/v1/retention/no_such_rule"),
    ],
)
def test_an_unknown_path_is_404(function: FunctionClient, target: str, path: str) -> None:
    resp = function(target).post(path)
    assert resp.status_code == 404 and json.loads(resp.data)["error"]["code"] == "not_found"


def _heartbeat(load: int = 1) -> dict[str, object]:
    return {
        "id": MCU_ID,
        "region": "europe-west3",
        "url": MCU_URL,
        "capacity": 50,
        "load": load,
        "latitude": 0.0,
        "longitude": 0.0,
        "workers": 2,
    }


def test_an_mcu_heartbeats_only_as_itself(function: FunctionClient) -> None:
    mcu = function("mcu_api")
    auth = {"X-MCU-Id": MCU_ID, "Authorization": f"Bearer {MCU_SECRET}"}
    assert mcu.post("/api/mcu/v1/heartbeat", json=_heartbeat(), headers=auth).status_code == 204
    stored = fs.data(fs.mcus().document(MCU_ID).get())
    assert stored["capacity"] == 50 and stored["latitude"] == 50.11  # the registry's location, not the MCU's
    wrong = {**auth, "Authorization": "Bearer guess"}
    assert mcu.post("/api/mcu/v1/heartbeat", json=_heartbeat(7), headers=wrong).status_code == 401
    assert (
        mcu.post("/api/mcu/v1/heartbeat", json={**_heartbeat(7), "url": "wss://evil.example/ws"}, headers=auth).status_code == 403
    )
    assert fs.data(fs.mcus().document(MCU_ID).get())["load"] == 1


def test_a_browser_opens_the_page_and_joins(function: FunctionClient, pbx: PbxClient, store: object) -> None:
    assert pbx.sync([EXT]).status_code == 200
    key = pbx.put_meeting("m-1", _meeting()).json()["meeting_key"]
    beat = function("mcu_api").post(
        "/api/mcu/v1/heartbeat", json=_heartbeat(), headers={"X-MCU-Id": MCU_ID, "Authorization": f"Bearer {MCU_SECRET}"}
    )
    assert beat.status_code == 204
    page = function("meeting_page").get(f"/meet/{key}")
    assert page.status_code == 200 and b"Quarterly review" in page.data
    assert "ws://127.0.0.1:9" in page.headers["Content-Security-Policy"]
    assert function("meeting_page").get("/meet/ada/quarterly-review").status_code == 200
    assert function("meeting_page").get("/meet/nope-nope-nope-nope").status_code == 404
    joined = function("meeting_api").post("/api/meet/v1/join", json={"meeting_key": key, "display_name": "Grace"})
    assert joined.status_code == 200, joined.data
    body = json.loads(joined.data)
    assert body["mcu_id"] == MCU_ID and body["role"] == "participant" and body["token"]
    no_token = function("meeting_api").get("/api/meet/v1/dialin")
    assert no_token.status_code == 401
    token = join_token(store, key)  # type: ignore[arg-type]
    not_organizer = function("meeting_api").get("/api/meet/v1/dialin", headers={"Authorization": f"Bearer {token}"})
    assert not_organizer.status_code == 403 and json.loads(not_organizer.data)["error"]["code"] == "organizer_only"


def test_tasks_need_their_secret(function: FunctionClient, store: object) -> None:
    tasks = function("tasks_api")
    assert tasks.post("/tasks/v1/retention/mails", json={}).status_code == 401
    secret = {SECRET_HEADER: store.tasks_secret}  # type: ignore[attr-defined]
    resp = tasks.post("/tasks/v1/retention/mails", json={}, headers=secret)
    assert resp.status_code == 200 and json.loads(resp.data) == {"rule": "mails", "done": 0, "more": False}
    bad = tasks.post("/tasks/v1/mail", json={"mail_id": "nope", "attempt": 1}, headers=secret)
    assert bad.status_code == 400 and json.loads(bad.data)["error"]["code"] == "invalid_request"
