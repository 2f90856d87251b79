"""A socket that drops without a "leave" (a network change, an outage) keeps the participant's
place for RESUME_GRACE_S: the others see them reconnecting, never a leave and a join; the same
tab coming back gets its place back (hand, media state); one that does not come back leaves when
the grace ends, and the portal hears one "left" per drop."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from mcu_vm.room import RESUME_GRACE_S
from tests.helpers import join_meeting, meeting_events, quick_links, wait_for

pytestmark = pytest.mark.integration


async def _join(
    session: aiohttp.ClientSession, join: dict[str, Any], key: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await session.ws_connect(join["mcu_url"])
    await ws.send_json({"type": "join", "token": join["token"], "meeting_key": key})
    return ws, await ws.receive_json(timeout=10)


async def _until(ws: aiohttp.ClientWebSocketResponse, seen: list[dict[str, Any]], wanted: Any, timeout: float) -> float:
    """Read ``ws`` into ``seen`` until ``wanted(message)``; the time it took."""
    start = time.monotonic()
    while True:
        msg = await ws.receive(timeout=timeout - (time.monotonic() - start))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        seen.append(json.loads(msg.data))
        if wanted(seen[-1]):
            return time.monotonic() - start


def _about(m: dict[str, Any], pid: str) -> bool:
    return m.get("participant_id") == pid or (m.get("participant") or {}).get("id") == pid


def test_a_dropped_socket_keeps_the_place_until_the_same_tab_is_back(platform: Platform, pbx: PbxClient) -> None:
    key, secret = quick_links(pbx)
    ada, grace = join_meeting(platform, key, "Ada", organizer_secret=secret), join_meeting(platform, key, "Grace")
    pid = grace["participant_id"]

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any], float, float]:
        seen: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            a, _ = await _join(session, ada, key)
            g, _ = await _join(session, grace, key)
            await g.send_json({"type": "hand", "up": True})
            await g.send_json({"type": "mute", "audio": False, "video": True})
            await _until(a, seen, lambda m: m.get("type") == "participant_updated" and m["participant"]["hand"], 5)
            await g.close()  # no "leave": a drop
            await _until(a, seen, lambda m: _about(m, pid) and (m.get("participant") or {}).get("reconnecting"), 5)
            g, back = await _join(session, grace, key)  # the same tab (same token, same participant id)
            await _until(a, seen, lambda m: _about(m, pid) and not (m.get("participant") or {}).get("reconnecting", True), 5)
            await g.close()  # and gone for good this time
            dropped = time.monotonic()
            left_after = dropped + await _until(a, seen, lambda m: m.get("type") == "participant_left", RESUME_GRACE_S + 5)
            await a.send_json({"type": "leave"})
            await a.close()
            return seen, back, dropped, left_after

    seen, back, dropped, left_after = asyncio.run(run())
    assert back["type"] == "joined" and back["participant_id"] == pid
    me = next(p for p in back["participants"] if p["id"] == pid)
    assert me["hand"] is True and me["audio"] is False  # its place, as it left it
    about = [m for m in seen if _about(m, pid)]
    joined_or_left = [m["type"] for m in about if m["type"] in ("participant_joined", "participant_left")]
    assert joined_or_left == ["participant_joined", "participant_left"], about  # the drop and the return were quiet
    assert RESUME_GRACE_S - 1 <= left_after - dropped <= RESUME_GRACE_S + 3

    def grace_events() -> list[tuple[str, str | None]]:
        evs = sorted((e for e in meeting_events(key) if e["participant_id"] == pid), key=lambda e: e["at"])
        return [(e["type"], e.get("reason")) for e in evs]

    expected = [("joined", None), ("left", "dropped"), ("reconnected", None), ("left", "dropped")]
    wait_for("Grace's events", lambda: grace_events() == expected, 15)
