"""The signalling channel outlives a few seconds of silence: a socket whose answers to the MCU's
ping arrive 7 s late (as through an outage that covers the ping) stays in the meeting, while one
that never answers is closed within 1.5 heartbeats."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from mcu_vm.signalling import WS_HEARTBEAT_S
from tests.helpers import join_meeting, quick_links
from webmeeting.domain import signalling as contract

pytestmark = pytest.mark.network
OUTAGE_S = 7.0  # longer than the 5 s pong deadline that used to drop people


async def _joined(session: aiohttp.ClientSession, joined: dict[str, Any], key: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(joined["mcu_url"], autoping=False, max_msg_size=1 << 20)
    await ws.send_json(contract.wire(contract.Join(type="join", token=joined["token"], meeting_key=key)))
    first = await ws.receive_json(timeout=10)
    assert first["type"] == "joined", first
    return ws


async def _late_answers(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """Answer the first ping only after ``OUTAGE_S``; then chat, and see our own message come back."""
    started = time.monotonic()
    while True:
        msg = await ws.receive(timeout=WS_HEARTBEAT_S * 2)
        if msg.type == aiohttp.WSMsgType.PING:
            pinged = time.monotonic() - started
            await asyncio.sleep(OUTAGE_S)
            await ws.pong(msg.data)
            break
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
    await ws.send_json({"type": "chat", "text": "still here"})
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT and msg.json().get("type") == "chat_message" and msg.json()["text"] == "still here":
            return {"pinged_after": pinged, "closed": ws.closed}
        assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING), msg


async def _never_answers(ws: aiohttp.ClientWebSocketResponse) -> float:
    """How long until the MCU closes a socket that never answers its pings."""
    started = time.monotonic()
    while True:
        msg = await ws.receive(timeout=WS_HEARTBEAT_S * 3)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return time.monotonic() - started


def test_a_late_pong_keeps_the_participant_and_a_dead_socket_is_closed(platform: Platform, pbx: PbxClient) -> None:
    key, secret = quick_links(pbx)
    ada = join_meeting(platform, key, "Ada", organizer_secret=secret)
    bob = join_meeting(platform, key, "Bob")

    async def run() -> tuple[dict[str, Any], float]:
        async with aiohttp.ClientSession(trust_env=False) as session:
            late = await _joined(session, ada, key)
            dead = await _joined(session, bob, key)
            return await asyncio.gather(_late_answers(late), _never_answers(dead))

    late, dead_after = asyncio.run(run())
    assert late == {"pinged_after": pytest.approx(WS_HEARTBEAT_S, abs=3), "closed": False}
    assert WS_HEARTBEAT_S <= dead_after <= WS_HEARTBEAT_S * 1.5 + 3, dead_after
