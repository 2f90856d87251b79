"""Dial-in data: fetched from the PBX (simulator) when the meeting starts, organizers only."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import assert_error, ext, join_meeting, meeting

pytestmark = pytest.mark.integration
NUMBERS = {
    "conference_number": "811",
    "dial_in": [{"country": "DE", "number": "+49 30 7654321"}, {"country": "GB", "number": "+44 20 7946 0018"}],
}


def _in_meeting(join: dict[str, Any], key: str, then: Any) -> Any:
    async def run() -> Any:
        async with aiohttp.ClientSession() as session, session.ws_connect(join["mcu_url"]) as ws:
            await ws.send_json({"type": "join", "token": join["token"], "meeting_key": key})
            joined = await ws.receive_json(timeout=10)
            return joined, await asyncio.get_running_loop().run_in_executor(None, then)

    return asyncio.run(run())


def _dialin(platform: Platform, token: str) -> requests.Response:
    return requests.get(
        platform.endpoints["portal"] + "/api/meet/v1/dialin", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _poll(platform: Platform, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        resp = _dialin(platform, token)
        data = resp.json()
        if resp.status_code == 403 and data["error"]["code"] == "not_connected":  # the MCU's event not in yet
            time.sleep(0.2)
            continue
        if data["status"] != "pending":
            return dict(data)
        time.sleep(0.2)
    raise AssertionError("dial-in data never arrived")


def _meeting(platform: Platform, pbx: PbxClient, fqdn: str, dialin: dict[str, Any] | None) -> tuple[str, str]:
    platform.register_pbx(fqdn, pbx.pbx_id, pbx.api_secret, dialin)
    pbx.sync([ext("101")])
    body = pbx.put_meeting("m-dial", meeting("101")).json()
    return body["meeting_key"], body["organizer_url"].split("#organizer=")[1]


def test_the_organizer_sees_the_pbxs_dial_in_numbers_and_a_participant_cannot(platform: Platform, pbx: PbxClient) -> None:
    key, secret = _meeting(platform, pbx, "pbx.example.com", NUMBERS)
    organizer = join_meeting(platform, key, "Ada", secret)
    participant = join_meeting(platform, key, "Grace")
    assert organizer["role"] == "organizer" and participant["role"] == "participant"
    joined, data = _in_meeting(organizer, key, lambda: _poll(platform, organizer["token"]))
    assert data == {"status": "ok", **NUMBERS}
    err = assert_error(_dialin(platform, participant["token"]), 403, "organizer_only")
    assert "organizer" in err["message"]
    assert_error(_dialin(platform, "not-a-token"), 401, "unauthenticated")
    for seen_by_participant in (json.dumps(participant), json.dumps(joined)):
        assert "+49 30 7654321" not in seen_by_participant and '"811"' not in seen_by_participant


def test_a_pbx_that_does_not_answer_leaves_dial_in_empty(platform: Platform, pbx: PbxClient) -> None:
    key, secret = _meeting(platform, pbx, "pbx.example.com", NUMBERS)
    (Path(platform.state_dir) / "pbx-sim" / "pbxs" / "pbx.example.com.down").write_text("")
    try:
        organizer = join_meeting(platform, key, "Ada", secret)
        joined, data = _in_meeting(organizer, key, lambda: _poll(platform, organizer["token"]))
        assert joined["type"] == "joined"  # the meeting itself is fine
        assert data == {"status": "unavailable", "conference_number": None, "dial_in": []}
    finally:
        (Path(platform.state_dir) / "pbx-sim" / "pbxs" / "pbx.example.com.down").unlink()
