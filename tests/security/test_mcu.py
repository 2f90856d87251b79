"""Outside in, at an MCU's public surface: the health endpoint tells nothing about meetings, errors
are stable codes with fixed texts, one socket cannot flood the room, and a publish cannot make
the MCU build unbounded receivers."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import aiohttp
import pytest
import requests

from infra.launcher import MCU_CAPACITY, Platform
from infra.pbx_client import PbxClient
from mcu_vm.room import BROADCAST_COALESCE_S
from mcu_vm.signalling import CLOSE_RATE, MAX_DROPPED, MESSAGE_BURST
from tests.helpers import ext, join_meeting, meeting, quick_links, wait_for
from webmeeting.domain.signalling import ERROR_TEXT

pytestmark = pytest.mark.integration


async def _connect(
    session: aiohttp.ClientSession, join: dict[str, Any], key: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await session.ws_connect(join["mcu_url"])
    await ws.send_json({"type": "join", "token": join["token"], "meeting_key": key})
    return ws, await ws.receive_json(timeout=10)


async def _drain(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        out.append(json.loads(msg.data))
    return out


def _mcu_of(platform: Platform, join: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in platform.endpoints["mcus"] if m["url"] == join["mcu_url"])


def test_health_says_up_load_and_capacity_and_nothing_about_meetings(platform: Platform, pbx: PbxClient) -> None:
    key, _ = quick_links(pbx)
    join = join_meeting(platform, key, "Ada")

    async def run() -> tuple[requests.Response, requests.Response]:
        async with aiohttp.ClientSession() as session:
            ws, joined = await _connect(session, join, key)
            assert joined["type"] == "joined"
            mcu = _mcu_of(platform, join)
            loop = asyncio.get_running_loop()
            health = await loop.run_in_executor(None, lambda: requests.get(mcu["health"], timeout=5))
            # what the TLS proxy in front of a production MCU would pass on
            proxied = await loop.run_in_executor(
                None, lambda: requests.get(mcu["status"], headers={"X-Forwarded-For": "203.0.113.5"}, timeout=5)
            )
            await ws.close()
            return health, proxied

    health, proxied = asyncio.run(run())
    assert health.status_code == 200
    body = health.json()
    assert set(body) == {"status", "load", "capacity"} and body["status"] == "up"
    assert isinstance(body["load"], int) and body["capacity"] == MCU_CAPACITY  # forwarded streams (alone: none of its own)
    assert key not in health.text and join["participant_id"] not in health.text
    assert proxied.status_code == 404 and key not in proxied.text


def test_refused_joins_get_a_stable_code_and_no_exception_text(platform: Platform, pbx: PbxClient) -> None:
    key, _ = quick_links(pbx)
    join = join_meeting(platform, key, "Ada")
    forged = join["token"][:-4] + ("AAAA" if not join["token"].endswith("AAAA") else "BBBB")

    async def attempt(first: Any) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(join["mcu_url"]) as ws:
            await (ws.send_json(first) if not isinstance(first, str) else ws.send_str(first))
            return dict(await ws.receive_json(timeout=10))

    cases = [
        {"type": "join", "token": "not.a.jwt", "meeting_key": key},
        {"type": "join", "token": forged, "meeting_key": key},
        {"type": "join", "token": join["token"], "meeting_key": "x" * 22},
        {"type": "join", "token": 12},
        "not json at all",
    ]
    for first in cases:
        answer = asyncio.run(attempt(first))
        assert answer["type"] == "error" and answer["code"] in ERROR_TEXT, answer
        assert answer["message"] == ERROR_TEXT[answer["code"]], answer  # a fixed text, never an exception's


def test_one_socket_cannot_flood_the_room(platform: Platform, pbx: PbxClient) -> None:
    key, _ = quick_links(pbx)
    flooder, watcher = join_meeting(platform, key, "Mallory"), join_meeting(platform, key, "Grace")

    async def send_all(ws: aiohttp.ClientWebSocketResponse, count: int) -> None:
        for n in range(count):
            if ws.closed:
                return
            try:
                await ws.send_json({"type": "mute", "audio": n % 2 == 1, "video": True})
            except ConnectionError:
                return
            await asyncio.sleep(0)  # let the reader take what the MCU says before it closes the socket

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], bool]:
        async with aiohttp.ClientSession() as session:
            w, _ = await _connect(session, watcher, key)
            f, _ = await _connect(session, flooder, key)
            await _drain(w, 0.5)  # Mallory's arrival
            await send_all(f, 49)  # within the burst: all accepted, ends muted
            coalesced = await _drain(w, 1.0)
            # read the flooder's socket while it floods: what the MCU tells it arrives before the close
            _, told, flooded = await asyncio.gather(send_all(f, 1000), _drain(f, 3.0), _drain(w, 3.0))
            closed = f.closed or any(m.get("type") == "participant_left" for m in flooded)
            await f.close()
            await w.close()
            return coalesced, flooded, told, closed

    coalesced, flooded, told, closed = asyncio.run(run())
    updates = [m for m in coalesced if m.get("type") == "participant_updated"]
    # 49 changes within BROADCAST_COALESCE_S reach the others as a handful of broadcasts of the latest state
    assert 1 <= len(updates) <= 3, updates
    assert updates[-1]["participant"]["audio"] is False  # n = 48: the last state sent (muted)
    assert BROADCAST_COALESCE_S >= 0.05 and MESSAGE_BURST >= 49
    # beyond the burst: refused, told once, and the socket closed after MAX_DROPPED
    assert len([m for m in flooded if m.get("type") == "participant_updated"]) <= 3
    assert {"type": "error", "code": "rate_limited", "message": ERROR_TEXT["rate_limited"]} in told, (told, flooded[-3:])
    assert closed and 1000 - MESSAGE_BURST > MAX_DROPPED


def test_a_flooder_too_busy_to_read_is_still_told_why_it_was_closed(platform: Platform, pbx: PbxClient) -> None:
    """A client that floods without reading (a busy tab, a script) gets the error and the close
    code when it reads at last: the MCU's close is a handshake, never a cut connection whose reset
    throws away what the client had yet to read."""
    key, _ = quick_links(pbx)
    flooder = join_meeting(platform, key, "Mallory")

    async def run() -> tuple[int, list[dict[str, Any]], int | None]:
        async with aiohttp.ClientSession() as session:
            f, _ = await _connect(session, flooder, key)
            sent = 0
            for n in range(1000):  # never reading, and still sending after the MCU has had enough
                try:
                    await f.send_json({"type": "mute", "audio": n % 2 == 1, "video": True})
                except ConnectionError:
                    break
                sent += 1
                await asyncio.sleep(0.001)
            told = await _drain(f, 5.0)  # at last
            return sent, told, f.close_code

    sent, told, code = asyncio.run(run())
    assert sent == 1000  # the MCU never cut the connection under the flood
    assert {"type": "error", "code": "rate_limited", "message": ERROR_TEXT["rate_limited"]} in told, told
    assert code == CLOSE_RATE


def test_a_publish_carries_at_most_one_audio_and_one_video_section(platform: Platform, pbx: PbxClient) -> None:
    key, _ = quick_links(pbx)
    join = join_meeting(platform, key, "Mallory")
    sections = "".join(
        f"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:{n}\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
        for n in range(16)
    )
    offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + sections

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as session:
            ws, _ = await _connect(session, join, key)
            await ws.send_json({"type": "publish", "sdp": offer})
            many = await _drain(ws, 1.0)
            await ws.send_json({"type": "publish", "sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\nthis is no sdp"})
            broken = await _drain(ws, 1.0)
            await ws.close()
            return many, broken

    many, broken = asyncio.run(run())
    assert many == [{"type": "error", "code": "too_many_tracks", "message": ERROR_TEXT["too_many_tracks"]}]
    # a broken offer fails that publish only: a stable code, and the participant stays connected
    assert broken == [{"type": "error", "code": "invalid_sdp", "message": ERROR_TEXT["invalid_sdp"]}]
    status = requests.get(_mcu_of(platform, join)["status"], timeout=5).json()
    assert status["decoders_created"] == 0


def test_the_last_two_leaving_at_once_close_the_room_cleanly(platform: Platform, pbx: PbxClient) -> None:
    key, _ = quick_links(pbx)
    a, b = join_meeting(platform, key, "Ada"), join_meeting(platform, key, "Grace")
    mcu = _mcu_of(platform, a)
    log = platform.state_dir / "logs" / f"mcu-{mcu['id']}.log"
    before = log.read_text(errors="replace")

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            (wa, _), (wb, _) = await asyncio.gather(_connect(session, a, key), _connect(session, b, key))
            await asyncio.gather(wa.send_json({"type": "leave"}), wb.send_json({"type": "leave"}))
            await asyncio.gather(wa.close(), wb.close())

    for _ in range(5):
        asyncio.run(run())

    def closed() -> bool:
        workers = requests.get(mcu["status"], timeout=5).json()["workers"]
        return all(key not in w["live"] for w in workers)

    wait_for("the room to close", closed, 10)
    new = log.read_text(errors="replace")[len(before) :]
    assert "Traceback" not in new and "KeyError" not in new, new[-2000:]


def _mallory_beside_grace(
    platform: Platform, pbx: PbxClient, script: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Mallory and Grace, participants of one meeting: ``script(mallory_ws, grace_ws, grace)``
    sends what Mallory tries; (what Mallory was told, what Grace saw afterwards, Grace's join)."""
    key, _ = quick_links(pbx)
    mallory, grace = join_meeting(platform, key, "Mallory"), join_meeting(platform, key, "Grace")

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as session:
            g, _ = await _connect(session, grace, key)
            m, _ = await _connect(session, mallory, key)
            await script(m, g, grace)
            told = await _drain(m, 1.0)
            seen = await _drain(g, 0.5)
            await m.close()
            await g.close()
            return told, seen

    told, seen = asyncio.run(run())
    return told, seen, grace


def test_the_room_channel_enforces_its_own_rules(platform: Platform, pbx: PbxClient) -> None:
    """A participant cannot lower (or raise) another's hand, write privately to no one, send an
    oversized or blank chat, or flood the chat. A refusal changes nothing."""

    async def script(m: aiohttp.ClientWebSocketResponse, g: aiohttp.ClientWebSocketResponse, grace: dict[str, Any]) -> None:
        await g.send_json({"type": "hand", "up": True})
        await _drain(g, 0.5)
        await m.send_json({"type": "hand", "up": False, "participant_id": grace["participant_id"]})
        await m.send_json({"type": "hand", "up": True, "participant_id": grace["participant_id"]})
        await m.send_json({"type": "chat", "text": "hi", "to": "nobody-here-000"})
        await m.send_json({"type": "chat", "text": "x" * 1001})
        await m.send_json({"type": "chat", "text": "   "})
        for n in range(8):
            await m.send_json({"type": "chat", "text": f"spam {n}"})

    told, seen, _ = _mallory_beside_grace(platform, pbx, script)
    codes = [t["code"] for t in told if t.get("type") == "error"]
    assert codes[:2] == ["forbidden", "forbidden"] and codes[2:5] == ["invalid_request"] * 3, told
    assert "rate_limited" in codes  # 8 messages at once: over the chat's burst
    assert len([t for t in seen if t.get("type") == "chat_message"]) == 5  # the burst, no more
    assert not any(t.get("type") == "participant_updated" and t["participant"]["hand"] is False for t in seen)


def test_only_the_organizer_moderates(platform: Platform, pbx: PbxClient) -> None:
    """A participant's moderate, mute_all and lock messages are refused and change nothing."""

    async def script(m: aiohttp.ClientWebSocketResponse, g: aiohttp.ClientWebSocketResponse, grace: dict[str, Any]) -> None:
        await _drain(g, 0.5)
        for action in ("mute", "stop_video", "stop_screen", "promote", "demote", "remove"):
            await m.send_json({"type": "moderate", "action": action, "participant_id": grace["participant_id"]})
        await m.send_json({"type": "mute_all"})
        await m.send_json({"type": "lock", "locked": True})
        await m.send_json({"type": "lobby", "enabled": True})
        # nor may a participant share a screen or open the door (checked before any SDP is read)
        await m.send_json({"type": "publish", "sdp": "v=0", "source": "screen"})
        await m.send_json({"type": "admit", "participant_id": grace["participant_id"], "admit": True})

    told, seen, _ = _mallory_beside_grace(platform, pbx, script)
    codes = [t.get("code") for t in told if t.get("type") == "error"]
    assert codes == ["forbidden"] * 9 + ["not_presenter"] * 2, told
    assert not [t for t in seen if t.get("type") in ("removed", "lock_state", "lobby_state", "participant_updated")], seen
    assert not [t for t in seen if t.get("type") == "subscribe_offer"], seen


def test_the_lobby_shows_a_waiting_person_nothing_and_takes_nothing_from_them(platform: Platform, pbx: PbxClient) -> None:
    """At the door: no participants, no chat, no media, no messages but ``leave``; the organizer
    sees who waits; one turned away cannot knock again with the same token."""
    pbx.sync([ext("101")])
    created = pbx.put_meeting(f"door-{secrets.token_hex(4)}", meeting(lobby=True)).json()
    key, secret = created["url"].rsplit("/", 1)[1], created["organizer_url"].split("#organizer=")[1]
    ada = join_meeting(platform, key, "Ada", organizer_secret=secret)
    mallory = join_meeting(platform, key, "Mallory")

    async def run() -> tuple[
        dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], Any, dict[str, Any]
    ]:
        async with aiohttp.ClientSession() as session:
            a, joined = await _connect(session, ada, key)
            assert joined["type"] == "joined" and joined["lobby"] is True
            await a.send_json({"type": "chat", "text": "for the people inside"})
            m, first = await _connect(session, mallory, key)
            for attempt in (
                {"type": "chat", "text": "let me in"},
                {"type": "hand", "up": True},
                {"type": "publish", "sdp": "v=0"},
                {"type": "admit", "participant_id": mallory["participant_id"], "admit": True},
            ):
                await m.send_json(attempt)
            told = await _drain(m, 1.0)
            door = await _drain(a, 0.5)
            await a.send_json({"type": "admit", "participant_id": mallory["participant_id"], "admit": False})
            after = await _drain(m, 1.0)
            again, refused = await _connect(session, mallory, key)
            await again.receive(timeout=2)
            await a.close()
            return first, told, door, after, m.close_code, refused

    first, told, door, after, code, refused = asyncio.run(run())
    assert first == {"type": "lobby_waiting", "participant_id": mallory["participant_id"]}
    assert [t.get("code") for t in told] == ["invalid_request"] * 4, told  # nothing but errors reaches her
    states = [d for d in door if d["type"] == "lobby_state"]
    assert states and states[-1]["waiting"] == [{"id": mallory["participant_id"], "name": "Mallory"}]
    assert not [d for d in door if d["type"] == "participant_joined"], door  # she is not in the meeting
    assert after == [{"type": "lobby_rejected"}] and code == 4005
    assert refused == {"type": "error", "code": "rejected", "message": ERROR_TEXT["rejected"]}


def test_one_screen_share_at_a_time(platform: Platform, pbx: PbxClient) -> None:
    """A second share while one runs is refused before anything is built; so is a second share
    of one's own, and one beyond the share bucket."""
    key, secret = quick_links(pbx)
    ada = join_meeting(platform, key, "Ada", organizer_secret=secret)
    grace = join_meeting(platform, key, "Grace")
    offer = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 "
        + ":".join(["AB"] * 32)
        + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\n"
        "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"
    )

    def kinds(messages: list[dict[str, Any]]) -> list[str]:
        return [m.get("code", m["type"]) for m in messages if m["type"] != "participant_joined"]

    async def run() -> list[list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as session:
            a, _ = await _connect(session, ada, key)
            g, _ = await _connect(session, grace, key)
            await a.send_json({"type": "moderate", "action": "promote", "participant_id": grace["participant_id"]})
            await a.send_json({"type": "publish", "sdp": offer, "source": "screen"})
            first = await _drain(a, 2.0)
            await a.send_json({"type": "publish", "sdp": offer, "source": "screen"})
            await g.send_json({"type": "publish", "sdp": offer, "source": "screen"})
            second, busy = await _drain(a, 1.0), await _drain(g, 1.0)
            await a.send_json({"type": "unshare"})
            await _drain(a, 0.5)
            await g.send_json({"type": "publish", "sdp": offer, "source": "screen"})
            grace_shares = await _drain(g, 2.0)
            await a.send_json({"type": "moderate", "action": "demote", "participant_id": grace["participant_id"]})
            demoted = await _drain(a, 1.0)
            await a.close()
            await g.close()
            return [first, second, busy, grace_shares, demoted]

    first, second, busy, grace_shares, demoted = asyncio.run(run())
    assert "publish_answer" in kinds(first) and next(f for f in first if f["type"] == "publish_answer")["source"] == "screen"
    assert kinds(second) == ["invalid_request"]  # one share of one's own
    assert "screen_busy" in kinds(busy) and "publish_answer" not in kinds(busy)  # one share in the room
    assert "publish_answer" in kinds(grace_shares)  # once it ended, a presenter may share
    # demoted, Grace shares no more: everyone is told her share ended
    updates = [d["participant"] for d in demoted if d["type"] == "participant_updated"]
    assert updates and updates[-1]["role"] == "participant" and updates[-1]["screen"] is False, demoted


def test_reactions_and_change_notices_are_bounded_per_person(platform: Platform, pbx: PbxClient) -> None:
    """A page cannot flood the room with reactions, nor make the others refetch at will."""

    async def script(m: aiohttp.ClientWebSocketResponse, g: aiohttp.ClientWebSocketResponse, grace: dict[str, Any]) -> None:
        await _drain(g, 0.5)
        for _ in range(8):
            await m.send_json({"type": "react", "emoji": "👍"})
            await m.send_json({"type": "changed", "what": "files"})

    told, seen, _ = _mallory_beside_grace(platform, pbx, script)
    assert [t["code"] for t in told if t.get("type") == "error"].count("rate_limited") >= 6, told
    assert len([t for t in seen if t.get("type") == "reaction"]) <= 6  # the burst of 5, and a refill
    assert len([t for t in seen if t.get("type") == "content_changed"]) <= 6
    assert [t for t in seen if t.get("type") == "content_changed"]  # within the bound, they arrive
