"""Every codec the MCU forwards (VP8, H.264, Opus) arrives decodable at a subscriber, while the
MCU itself decodes nothing. Participants are aiortc clients here (browsers: tests/e2e)."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from infra.launcher import Platform
from infra.mcu_client import McuClient
from infra.pbx_client import PbxClient
from mcu_vm import net
from tests.helpers import ext

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])  # this test process's aiortc gathers on loopback only


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
def test_codec_is_forwarded_without_decoding(platform: Platform, pbx: PbxClient, codec: str) -> None:
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    portal = platform.endpoints["portal"]

    async def run() -> tuple[McuClient, McuClient]:
        alice, bob = McuClient(portal, key, "Alice"), McuClient(portal, key, "Bob")
        await alice.join()
        await bob.join()
        await alice.publish([AudioStreamTrack(), VideoStreamTrack()], video_codec=codec)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = bob.received.get(alice.joined["participant_id"])
            if got and got.kinds.get("video", 0) > 20 and got.kinds.get("audio", 0) > 20:
                break
            await asyncio.sleep(0.2)
        await alice.close()
        await bob.close()
        return alice, bob

    alice, bob = asyncio.run(run())
    got = bob.received[alice.joined["participant_id"]]
    assert got.kinds.get("video", 0) > 20 and got.kinds.get("audio", 0) > 20, got
    assert got.codecs == {codec, "audio/opus"}
    assert got.sizes == {(640, 480)}  # aiortc's test pattern, decoded at the subscriber
    health = requests.get(platform.endpoints["mcus"][0]["status"], timeout=5).json()
    assert health["decoders_created"] == 0
