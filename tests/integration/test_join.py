"""Joining: the portal's join API, the MCU's token checks, participant events and counters."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import assert_error, ext, meeting_events, new_pbx
from webmeeting import tokens
from webmeeting.adapters import firestore as fs
from webmeeting.services.licenses import add_license

pytestmark = pytest.mark.integration


def _key(url: str) -> str:
    return url.split("#")[0].rsplit("/", 1)[1]


@pytest.fixture
def quick(pbx: PbxClient) -> dict[str, str]:
    e = pbx.sync([ext("101")]).json()["extensions"][0]
    return {"key": _key(e["quick_meeting_url"]), "organizer_secret": e["quick_meeting_organizer_url"].split("#organizer=")[1]}


def _join(platform: Platform, key: str, name: str = "Ada", **extra: Any) -> requests.Response:
    body = {"meeting_key": key, "display_name": name, **extra}
    return requests.post(platform.endpoints["portal"] + "/api/meet/v1/join", json=body, timeout=10)


async def _ws_join(
    url: str, token: str, meeting_key: str
) -> tuple[dict[str, Any], aiohttp.ClientWebSocketResponse, aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    await ws.send_json({"type": "join", "token": token, "meeting_key": meeting_key})
    msg = await ws.receive_json(timeout=10)
    return msg, ws, session


def ws_first_message(url: str, token: str, meeting_key: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        msg, ws, session = await _ws_join(url, token, meeting_key)
        await ws.close()
        await session.close()
        return msg

    return asyncio.run(run())


def test_join_issues_a_short_lived_token_for_the_pbxs_mcu(platform: Platform, quick: dict[str, str]) -> None:
    resp = _join(platform, quick["key"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["role"] == "participant" and body["mcu_id"] == "mcu-eu-1"
    assert body["mcu_url"] == platform.endpoints["mcus"][0]["url"]
    claims = tokens.verify(platform.token_keys[1], body["token"], "mcu-eu-1", datetime.now(UTC))
    assert claims.meeting_key == quick["key"] and claims.display_name == "Ada" and claims.max_participants == 25
    assert timedelta(seconds=0) < claims.expires_at - datetime.now(UTC) <= timedelta(seconds=tokens.JOIN_TOKEN_TTL_S)
    assert "Set-Cookie" not in resp.headers
    assert ws_first_message(body["mcu_url"], body["token"], quick["key"])["type"] == "joined"


def test_the_organizer_link_secret_gives_the_organizer_role(platform: Platform, quick: dict[str, str]) -> None:
    assert _join(platform, quick["key"], organizer_secret=quick["organizer_secret"]).json()["role"] == "organizer"
    assert _join(platform, quick["key"], organizer_secret="x" * 22).json()["role"] == "participant"


def test_a_rejoin_keeps_the_participant_id(platform: Platform, quick: dict[str, str]) -> None:
    first = _join(platform, quick["key"]).json()
    again = _join(platform, quick["key"], rejoin_secret=first["rejoin_secret"]).json()
    assert again["participant_id"] == first["participant_id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"meeting_key": "A" * 22, "display_name": "x"}, 404, "not_found"),
        ({"meeting_key": "short", "display_name": "x"}, 400, "invalid_request"),
        ({"display_name": "x"}, 400, "invalid_request"),
        ({"meeting_key": "A" * 22, "display_name": ""}, 400, "invalid_request"),
        ({"meeting_key": "A" * 22, "display_name": "x" * 65}, 400, "invalid_request"),
        ({"meeting_key": "A" * 22, "display_name": "x", "admin": True}, 400, "invalid_request"),
    ],
)
def test_bad_joins(platform: Platform, quick: dict[str, str], body: dict[str, Any], status: int, code: str) -> None:
    resp = requests.post(platform.endpoints["portal"] + "/api/meet/v1/join", json=body, timeout=10)
    assert_error(resp, status, code)


def _mint(platform: Platform, meeting_key: str, *, mcu_id: str = "mcu-eu-1", exp_s: int = 60, key: str | None = None) -> str:
    now = datetime.now(UTC)
    claims = tokens.JoinClaims(meeting_key, "p" * 24, "Mallory", "participant", mcu_id, 25, now + timedelta(seconds=exp_s))
    return tokens.issue(key or platform.token_keys[0], claims, now)


@pytest.mark.parametrize("case", ["expired", "forged", "tampered", "wrong_meeting", "other_mcu", "garbage"])
def test_the_mcu_refuses_bad_tokens(platform: Platform, quick: dict[str, str], case: str) -> None:
    mcu = platform.endpoints["mcus"][0]["url"]
    meeting_key = quick["key"]
    if case == "expired":
        token = _mint(platform, meeting_key, exp_s=-10)
    elif case == "forged":
        token = _mint(platform, meeting_key, key=tokens.new_keypair()[0])
    elif case == "tampered":
        head, payload, sig = _mint(platform, meeting_key).split(".")
        import base64

        data = json.loads(base64.urlsafe_b64decode(payload + "=="))
        data["role"] = "organizer"
        payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        token = f"{head}.{payload}.{sig}"
    elif case == "wrong_meeting":
        token = _mint(platform, "B" * 22)
    elif case == "other_mcu":
        token = _mint(platform, meeting_key, mcu_id="mcu-us-1")
    else:
        token = "not-a-token"
    msg = ws_first_message(mcu, token, meeting_key)
    assert msg["type"] == "error" and msg["code"] == "unauthenticated", msg
    assert ws_first_message(mcu, _mint(platform, meeting_key), meeting_key)["type"] == "joined"


def test_the_participant_limit_is_enforced_by_portal_and_mcu(platform: Platform, api: str) -> None:
    small = add_license(
        edition="small", expires_at=datetime.now(UTC) + timedelta(days=1), max_participants=2, recording=False
    ).key
    pbx = new_pbx(api, small, "small.example.com")
    key = _key(pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"])
    joins = [_join(platform, key, f"P{i}").json() for i in range(3)]  # nobody connected yet: all get tokens

    async def run() -> list[dict[str, Any]]:
        held = []
        answers = []
        for j in joins:
            msg, ws, session = await _ws_join(j["mcu_url"], j["token"], key)
            answers.append(msg)
            held.append((ws, session))
        # the portal's counter follows the MCU's events: now the portal refuses too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            count = fs.data(fs.client().collection("sessions").document(key).get()).get("count")
            if count == 2:
                break
            await asyncio.sleep(0.1)
        refused = _join(platform, key, "P4")
        answers.append({"portal": refused.status_code, "body": refused.json()})
        for ws, session in held:
            await ws.close()
            await session.close()
        return answers

    answers = asyncio.run(run())
    assert [a.get("type") for a in answers[:3]] == ["joined", "joined", "error"]
    assert answers[2]["code"] == "meeting_full"
    assert answers[3]["portal"] == 403 and answers[3]["body"]["error"]["code"] == "meeting_full"


def test_events_are_stored_once_and_move_the_counter(platform: Platform, quick: dict[str, str]) -> None:
    j = _join(platform, quick["key"], "Ada").json()

    async def run() -> None:
        msg, ws, session = await _ws_join(j["mcu_url"], j["token"], quick["key"])
        assert msg["type"] == "joined"
        await asyncio.sleep(0.2)
        await ws.send_json({"type": "leave"})
        await ws.close()
        await session.close()

    asyncio.run(run())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        evs = meeting_events(quick["key"])
        if {e["type"] for e in evs} == {"joined", "left"}:
            break
        time.sleep(0.1)
    assert sorted(e["type"] for e in evs) == ["joined", "left"]
    joined = next(e for e in evs if e["type"] == "joined")
    assert joined["name"] == "Ada" and joined["ip"] == "127.0.0.1" and joined["participant_id"] == j["participant_id"]
    session_doc = fs.data(fs.client().collection("sessions").document(quick["key"]).get())
    assert session_doc["count"] == 0 and session_doc["ended_at"]

    # a retried batch changes nothing
    headers = {"Authorization": f"Bearer {platform.mcu_secrets['mcu-eu-1']}", "X-MCU-Id": "mcu-eu-1"}
    batch = {
        "events": [
            {
                k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v)
                for k, v in joined.items()
                if k in ("id", "type", "meeting_key", "participant_id", "at", "mcu_id", "name", "role", "ip")
            }
        ]
    }
    resp = requests.post(platform.endpoints["portal"] + "/api/mcu/v1/events", json=batch, headers=headers, timeout=10)
    assert resp.status_code == 200 and resp.json() == {"stored": 0}
    assert fs.data(fs.client().collection("sessions").document(quick["key"]).get())["count"] == 0


def test_mcu_api_needs_the_mcu_credentials(platform: Platform) -> None:
    url = platform.endpoints["portal"] + "/api/mcu/v1/heartbeat"
    assert_error(
        requests.post(url, json={}, headers={"Authorization": "Bearer nope", "X-MCU-Id": "x"}, timeout=10), 401, "unauthenticated"
    )
