"""Every codec the MCU forwards (VP8, H.264, Opus) arrives decodable at a subscriber, while the
MCU itself decodes nothing. Participants are aiortc clients here (browsers: tests/e2e)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
import requests
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from infra.launcher import Platform
from infra.mcu_client import McuClient
from infra.pbx_client import PbxClient
from mcu_vm import net
from tests.helpers import ext, join_meeting
from webmeeting.domain.signalling import ERROR_TEXT

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])  # this test process's aiortc gathers on loopback only


@pytest.mark.parametrize(
    ("offered", "codec"),
    [
        ("video/VP8", "video/VP8"),
        ("video/H264", "video/H264"),  # an H.264-only publisher is forwarded as it is
        (["video/H264", "video/VP8"], "video/VP8"),  # Safari's order: the room gets what everyone decodes
    ],
    ids=["vp8", "h264-only", "h264-first"],
)
def test_codec_is_forwarded_without_decoding(platform: Platform, pbx: PbxClient, offered: str | list[str], codec: str) -> None:
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    portal = platform.endpoints["portal"]

    forwarding: dict[str, int] = {}

    async def run() -> tuple[McuClient, McuClient]:
        alice, bob = McuClient(portal, key, "Alice"), McuClient(portal, key, "Bob")
        await alice.join()
        await bob.join()
        await alice.publish([AudioStreamTrack(), VideoStreamTrack()], video_codec=offered)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = bob.received.get(alice.joined["participant_id"])
            if got and got.kinds.get("video", 0) > 20 and got.kinds.get("audio", 0) > 20:
                break
            await asyncio.sleep(0.2)
        forwarding.update(await asyncio.to_thread(platform.mcu_forwarding))  # while they are there
        await alice.close()
        await bob.close()
        return alice, bob

    alice, bob = asyncio.run(run())
    got = bob.received[alice.joined["participant_id"]]
    assert got.kinds.get("video", 0) > 20 and got.kinds.get("audio", 0) > 20, got
    # every packet went straight from the native sink to Bob's socket, none through aiortc's path
    assert forwarding["sent_direct"] > 40 and forwarding["sent_slow"] == 0 and forwarding["send_errors"] == 0, forwarding
    assert got.codecs == {codec, "audio/opus"}
    assert got.negotiated == {codec, "video/rtx", "audio/opus"}  # retransmissions on their own stream
    assert got.sizes == {(640, 480)}  # aiortc's test pattern, decoded at the subscriber
    health = requests.get(platform.endpoints["mcus"][0]["status"], timeout=5).json()
    assert health["decoders_created"] == 0


def test_a_failed_subscription_drops_that_stream_only(platform: Platform, pbx: PbxClient) -> None:
    """A subscriber whose answer the MCU cannot take (a browser declining a codec, a broken
    SDP) loses that one stream: it stays in the room, the others are untouched."""
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    portal = platform.endpoints["portal"]

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        alice, carol = McuClient(portal, key, "Alice"), McuClient(portal, key, "Carol")
        await alice.join()
        await carol.join()
        bob = join_meeting(platform, key, "Bob")
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(bob["mcu_url"])
            await ws.send_json({"type": "join", "token": bob["token"], "meeting_key": key})
            await alice.publish([AudioStreamTrack(), VideoStreamTrack()])
            offers: list[dict[str, Any]] = []
            deadline = time.monotonic() + 10
            while not offers and time.monotonic() < deadline:
                msg = await ws.receive_json(timeout=10)
                if msg["type"] == "subscribe_offer":
                    offers.append(msg)
            bad = offers[0]["sdp"].replace("a=fingerprint:", "a=x-fingerprint:").replace("a=ice-ufrag:", "a=x-ice-ufrag:")
            await ws.send_json({"type": "subscribe_answer", "publisher_id": offers[0]["publisher_id"], "sdp": bad})
            await ws.send_json({"type": "chat", "text": "still here"})
            told = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    told.append(await ws.receive_json(timeout=deadline - time.monotonic()))
                except TimeoutError:
                    break
            # Carol, subscribed normally, still receives Alice
            carol_video = 0
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and carol_video <= 20:
                got = carol.received.get(alice.joined["participant_id"])
                carol_video = got.kinds.get("video", 0) if got else 0
                await asyncio.sleep(0.2)
            await ws.close()
        await alice.close()
        await carol.close()
        return offers, told, carol_video

    offers, told, carol_video = asyncio.run(run())
    assert offers and {"type": "error", "code": "invalid_sdp", "message": ERROR_TEXT["invalid_sdp"]} in told, told
    assert any(t["type"] == "chat_message" and t["text"] == "still here" for t in told)  # Bob is still in the room
    assert not any(t["type"] == "participant_left" for t in told)
    assert carol_video > 20
