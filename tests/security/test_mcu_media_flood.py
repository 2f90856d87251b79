"""A publisher that floods its own media connection (a client that ignores what it is asked to
send) cannot make the MCU forward its flood: past what any publisher may send its packets are
dropped before anything reads them, and the meeting goes on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.rtp import RtpPacket

from infra.launcher import Platform
from infra.mcu_client import McuClient
from infra.pbx_client import PbxClient
from mcu_vm import net
from mcu_vm.adaptation import INGRESS_BURST_S, INGRESS_MAX_BPS, INGRESS_MAX_PPS
from tests.helpers import ext

pytestmark = pytest.mark.integration

FLOOD_PACKETS = 6000
FLOOD_BATCH, FLOOD_EVERY_S = 30, 0.01  # 3,000 packets a second (26 Mbit/s), over two seconds: paced, so
# that what is dropped is the MCU's doing, not a socket buffer's
FLOOD_PAYLOAD = bytes([0x10, 0x01]) + bytes(1100)  # a VP8 delta frame's packet: forwardable as it is


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])


async def _packets_in(client: McuClient, publisher_id: str) -> int:
    """Every packet the subscription's connection received (media and RTCP, whatever it says)."""
    stats = await client.subs[publisher_id].getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "transport")


def test_a_flooding_publisher_is_cut_to_what_any_publisher_may_send(platform: Platform, pbx: PbxClient) -> None:
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    portal = platform.endpoints["portal"]
    before = platform.mcu_forwarding()

    async def run() -> dict[str, Any]:
        alice, bob = McuClient(portal, key, "Alice"), McuClient(portal, key, "Bob")
        await alice.join()
        await bob.join()
        await alice.publish([AudioStreamTrack(), VideoStreamTrack()])
        alice_id = alice.joined["participant_id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = bob.received.get(alice_id)
            if got and got.kinds.get("video", 0) > 20:
                break
            await asyncio.sleep(0.2)
        assert alice.pub_pc is not None
        sender = next(t.sender for t in alice.pub_pc.getTransceivers() if t.kind == "video")
        payload_type = next(t._codecs[0].payloadType for t in alice.pub_pc.getTransceivers() if t.kind == "video")
        # let the publisher's stream settle, then count what reaches Bob over the flood's window
        await asyncio.sleep(1.0)
        start_packets = await _packets_in(bob, alice_id)
        start = time.monotonic()
        newest = max(sender._RTCRtpSender__rtp_history.values(), key=lambda p: p.timestamp)  # its last packets
        seq = (newest.sequence_number + 200) & 0xFFFF  # ahead of its own stream: new to the MCU
        for i in range(FLOOD_PACKETS):
            packet = RtpPacket(
                payload_type=payload_type,
                sequence_number=(seq + i) & 0xFFFF,
                timestamp=(i // 10) * 3000,
                ssrc=sender._ssrc,
                payload=FLOOD_PAYLOAD,
            )
            await sender.transport._send_rtp(packet.serialize())  # protected (SRTP) like any of its packets
            if i % FLOOD_BATCH == FLOOD_BATCH - 1:
                await asyncio.sleep(max(0.0, start + (i + 1) / FLOOD_BATCH * FLOOD_EVERY_S - time.monotonic()))
        flooded_s = time.monotonic() - start
        await asyncio.sleep(1.5)  # what passed has reached Bob
        elapsed = time.monotonic() - start
        received = await _packets_in(bob, alice_id) - start_packets
        counted = platform.mcu_forwarding()  # while they are there: the counters are the live participants'
        still_in = bob.ws is not None and not bob.ws.closed and alice.ws is not None and not alice.ws.closed
        await alice.close()
        await bob.close()
        return {"flooded_s": flooded_s, "elapsed": elapsed, "received": received, "still_in": still_in, "counted": counted}

    got = asyncio.run(run())
    dropped = got.pop("counted").get("ingress_dropped", 0) - before.get("ingress_dropped", 0)
    size = len(FLOOD_PAYLOAD) + 12
    by_bits = INGRESS_MAX_BPS["camera"] * (INGRESS_BURST_S + got["elapsed"]) / (size * 8)
    by_count = INGRESS_MAX_PPS["camera"] * (INGRESS_BURST_S + got["elapsed"])
    allowed = min(by_bits, by_count)
    # it sent far faster than any publisher may (otherwise this test shows nothing) ...
    assert FLOOD_PACKETS * size * 8 / got["flooded_s"] > 3 * INGRESS_MAX_BPS["camera"], got
    # ... most of it was dropped at the MCU, and Bob got no more than the budget and the rest of
    # the meeting (audio, RTCP: a few hundred packets a second at most)
    assert dropped >= FLOOD_PACKETS - allowed, (dropped, allowed, got)
    assert got["received"] <= allowed + 300 * got["elapsed"], (got, allowed)
    assert got["still_in"]
