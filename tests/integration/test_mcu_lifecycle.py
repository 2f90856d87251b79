"""An MCU's clean shutdown, and that no service ever sets a cookie."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import ext, meeting_events
from webmeeting import tokens
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


def _token(platform: Platform, key: str, mcu_id: str) -> str:
    now = datetime.now(UTC)
    claims = tokens.JoinClaims(key, "s" * 24, "Shutdown", "participant", mcu_id, 25, now + timedelta(seconds=60))
    return tokens.issue(platform.token_keys[0], claims, now)


def test_sigterm_closes_every_participant_and_reports_them_left(platform: Platform, pbx: PbxClient) -> None:
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    mcu = platform.start_mcu("mcu-shutdown-test", "test-region", 0.0, 0.0)
    platform.wait_registered({"mcu-shutdown-test"})
    proc = next(p for p in platform.procs if p.name == "mcu-mcu-shutdown-test")

    async def run() -> tuple[aiohttp.WSMsgType, int | None]:
        async with aiohttp.ClientSession() as session, session.ws_connect(mcu["url"]) as ws:
            await ws.send_json({"type": "join", "token": _token(platform, key, "mcu-shutdown-test"), "meeting_key": key})
            assert (await ws.receive_json(timeout=10))["type"] == "joined"
            os.killpg(proc.popen.pid, signal.SIGTERM)
            msg = await ws.receive(timeout=15)
            return msg.type, ws.close_code

    kind, _ = asyncio.run(run())
    assert kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert proc.popen.wait(timeout=20) == 0 or proc.popen.returncode is not None
    deadline = time.monotonic() + 10
    left: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and not left:
        left = [e for e in meeting_events(key) if e["type"] == "left"]
        time.sleep(0.2)
    everything = meeting_events(key)
    assert [e["reason"] for e in left] == ["mcu_shutdown"], everything
    platform.procs.remove(proc)
    fs.client().collection("mcus").document("mcu-shutdown-test").delete()


def test_no_service_sets_a_cookie(platform: Platform, pbx: PbxClient) -> None:
    e = pbx.sync([ext("101")]).json()["extensions"][0]
    portal = platform.endpoints["portal"]
    responses = [
        requests.get(e["quick_meeting_url"], timeout=10),
        requests.get(portal + "/meet/nothing-here-at-all", timeout=10),
        requests.get(portal + "/assets/meeting.js", timeout=10),
        requests.get(platform.endpoints["pbx_api"] + "/openapi.json", timeout=10),
        requests.post(
            portal + "/api/meet/v1/join",
            json={"meeting_key": e["quick_meeting_url"].rsplit("/", 1)[1], "display_name": "x"},
            timeout=10,
        ),
        requests.get(platform.endpoints["mcus"][0]["health"], timeout=10),
        requests.get(platform.endpoints["pbx_simulator"], timeout=10) if "pbx_simulator" in platform.endpoints else None,
    ]
    headers = [dict(r.headers) for r in responses if r is not None]

    async def ws_headers() -> dict[str, str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(platform.endpoints["mcus"][0]["url"]) as ws:
            return dict(ws._response.headers)

    headers.append(asyncio.run(ws_headers()))
    assert all("set-cookie" not in {k.lower() for k in h} for h in headers), headers
