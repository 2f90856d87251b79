"""Forwarding rules of the passthrough, with packets made by hand."""

import asyncio
from typing import Any

import pytest

from mcu_vm import net, passthrough
from mcu_vm.passthrough import ForwardTrack, Publisher, is_keyframe


def test_vp8_and_h264_keyframes() -> None:
    assert is_keyframe("VP8", b"\x10\x02") and not is_keyframe("VP8", b"\x11\x02")
    idr = b"\x00\x00\x00\x01\x67abc\x00\x00\x01\x65xyz"  # SPS then IDR slice
    delta = b"\x00\x00\x00\x01\x41xyz"
    assert is_keyframe("H264", idr) and not is_keyframe("H264", delta)
    assert is_keyframe("opus", b"\x01")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_video_waits_for_a_keyframe_and_asks_for_one() -> None:
    async def go() -> tuple[int, list[bool]]:
        asked: list[int] = []
        fwd = ForwardTrack("video", lambda: asked.append(1))
        got = [fwd.admit(False, None), fwd.admit(False, None), fwd.admit(True, None), fwd.admit(False, None)]
        return len(asked), got

    asked, got = run(go())
    assert asked == 1 and got == [False, False, True, True]  # the second delta frame's ask was held: one is on its way


def test_one_subscriber_asks_for_keyframes_at_most_once_per_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passthrough, "SUBSCRIBER_KEYFRAME_GAP_S", 0.2)

    async def go() -> tuple[int, int, int, int]:
        asked: list[int] = []
        lossy = ForwardTrack("video", lambda: asked.append(1))
        lossy.admit(True, None)
        for _ in range(10):  # its decoder's PLIs, 5-7 a second in the field
            lossy.keyframe_requested()
        burst = len(asked)
        await asyncio.sleep(0.3)  # no keyframe came: the held request goes at the gap's end
        after_gap = len(asked)
        for _ in range(3):
            lossy.keyframe_requested()
        lossy.admit(True, None)  # a keyframe (asked for by someone) reached it meanwhile
        await asyncio.sleep(0.3)
        lossy.stop()
        return burst, after_gap, len(asked), lossy.keyframe_asks_held

    assert run(go()) == (1, 2, 2, 12)  # the last three were held, then answered by the keyframe


def test_a_held_publisher_resumes_its_subscribers_at_a_keyframe() -> None:
    async def go() -> list[bool]:
        fwd = ForwardTrack("video", lambda: None)
        got = [fwd.admit(True, None), fwd.admit(False, None)]
        fwd.resync()
        got += [fwd.admit(False, None), fwd.admit(True, None)]
        fwd.stop()
        return got

    assert run(go()) == [True, True, False, True]


def test_a_forward_track_yields_nothing_and_ends_with_its_subscription() -> None:
    from aiortc.mediastreams import MediaStreamError

    async def go() -> bool:
        fwd = ForwardTrack("audio", lambda: None)
        waiting = asyncio.ensure_future(fwd.recv())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # aiortc's sender waits here; packets go out through the sink
        fwd.stop()
        with pytest.raises(MediaStreamError):
            await waiting
        return True

    assert run(go())


class FakeSource:
    """A receiver stand-in: records PLIs."""

    def __init__(self) -> None:
        self.plis: list[int] = []

    def getSynchronizationSources(self) -> list[Any]:  # noqa: N802 - aiortc's name
        class S:
            source = 1234

        return [S()]

    async def _send_rtcp_pli(self, ssrc: int) -> None:
        self.plis.append(ssrc)

    _RTCRtpReceiver__rtcp_ssrc = 99

    async def _send_rtcp(self, packet: Any) -> None:
        self.__dict__.setdefault("rtcp", []).append(packet)


class Track:
    kind = "video"


def test_unanswered_keyframe_requests_are_rate_limited_but_not_lost() -> None:
    async def go() -> tuple[int, int]:
        src = FakeSource()
        pub = Publisher(Track(), src, None)  # type: ignore[arg-type]
        for _ in range(10):
            pub.request_keyframe()
        await asyncio.sleep(0.01)
        burst = len(src.plis)
        await asyncio.sleep(passthrough.KEYFRAME_REQUEST_INTERVAL_S + 0.1)  # the deferred one fires
        return burst, len(src.plis)

    assert run(go()) == (1, 2)


def test_an_answered_request_may_be_followed_quickly() -> None:
    async def go() -> int:
        src = FakeSource()
        pub = Publisher(Track(), src, None)  # type: ignore[arg-type]
        pub.request_keyframe()
        pub._keyframe_since_request = True  # what _run records when a keyframe arrives
        await asyncio.sleep(passthrough.KEYFRAME_REQUEST_MIN_GAP_S + 0.02)
        pub.request_keyframe()
        await asyncio.sleep(0.01)
        return len(src.plis)

    assert run(go()) == 2


def test_udp_binds_stay_in_the_port_range() -> None:
    async def go() -> list[int]:
        loop = asyncio.get_running_loop()
        net.bind_in_port_range(loop, 29100, 29103)
        transports = []
        for _ in range(4):
            t, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            transports.append(t)
        ports = [net.port_of(t) for t in transports]
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        for t in transports:
            t.close()
        return ports

    assert sorted(run(go())) == [29100, 29101, 29102, 29103]


def test_retransmissions_only_young_packets_once_per_rtt_within_the_budget() -> None:
    from mcu_vm.passthrough import RETRANSMIT_BURST_BYTES, RETRANSMIT_MAX_AGE_S, RETRANSMIT_SHARE, RetransmitBudget

    budget = RetransmitBudget()
    assert budget.allow(1, 0.1, 1200, now=10.0, rtt_s=0.2, octets_sent=0)
    assert not budget.allow(2, RETRANSMIT_MAX_AGE_S + 0.01, 1200, now=10.0, rtt_s=0.2, octets_sent=0)  # too old
    assert not budget.allow(1, 0.1, 1200, now=10.1, rtt_s=0.2, octets_sent=0)  # again within the round trip
    assert not budget.allow(1, 0.1, 1200, now=10.15, rtt_s=0.2, octets_sent=0)  # its answer is still under way
    assert budget.allow(1, 0.15, 1200, now=10.17, rtt_s=0.2, octets_sent=0)  # about a round trip on: it was lost too
    # the burst spent, a NACK storm gets nothing more until the stream itself sends
    while budget.allow(1000 + budget.resent, 0.1, 1200, now=11.0, rtt_s=0.2, octets_sent=0):
        pass
    assert budget.resent_bytes <= RETRANSMIT_BURST_BYTES and budget.refused["budget"] == 1
    assert not budget.allow(5000, 0.1, 1200, now=11.0, rtt_s=0.2, octets_sent=1000)  # 250 bytes earned: not enough
    assert budget.allow(5001, 0.1, 1200, now=11.0, rtt_s=0.2, octets_sent=10_000)  # 2,500 earned
    assert budget.tokens == pytest.approx(RETRANSMIT_SHARE * 10_000 - 1200, abs=1200)
    assert budget.refused["old"] == 1 and budget.refused["repeat"] == 2


def test_a_publisher_is_told_what_to_send_when_it_changes_and_once_a_second() -> None:
    from aiortc.rtp import RTCP_PSFB_APP, unpack_remb_fci

    async def go() -> list[tuple[int, list[int]]]:
        src = FakeSource()
        src._RTCRtpReceiver__remote_bitrate_estimator = object()  # aiortc's own estimator
        pub = Publisher(Track(), src, None)  # type: ignore[arg-type]
        assert src._RTCRtpReceiver__remote_bitrate_estimator is None  # switched off: the MCU decides
        pub.ask(2_500_000, now=10.0)
        pub.ask(2_400_000, now=10.2)  # within 10 % and within the second: nothing new
        pub.ask(1_000_000, now=10.4)  # a real change: at once
        pub.ask(1_000_000, now=11.5)  # the same a second later: repeated (a REMB is a standing order)
        await asyncio.sleep(0.01)
        sent = src.__dict__.get("rtcp", [])
        assert all(p.fmt == RTCP_PSFB_APP and p.ssrc == 99 and p.media_ssrc == 0 for p in sent)
        return [unpack_remb_fci(p.fci) for p in sent]

    assert run(go()) == [(2_500_000, [1234]), (1_000_000, [1234]), (1_000_000, [1234])]


def bind_by_hand(gate: Any, sequence_start: int, slow: Any) -> None:
    """A native sink bound without an aiortc sender: all it sends goes to ``slow``."""
    from aiortc.rtcdtlstransport import State

    transport = type("Transport", (), {"_state": State.CONNECTED})()
    gate.bind(
        ssrc=1, rtx_ssrc=2, payload_type=96, rtx_payload_type=-1, clock_rate=90000, mid=b"", mid_id=0,
        abs_send_time_id=0, audio_level_id=0, sequence_start=sequence_start, timestamp_offset=0, rtx_sequence=0,
        sender_dict=None, transport=transport, connected=State.CONNECTED, nominated=None,
        resolve=lambda _: None, slow=slow,
    )  # fmt: skip


def test_a_packet_the_publisher_sends_twice_goes_out_once() -> None:
    """Chromium resends old packets on its RTX stream as bandwidth probes; one already forwarded
    is not forwarded again."""
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters
    from aiortc.rtp import RtpPacket

    class Receiver(FakeSource):
        def __init__(self) -> None:
            super().__init__()
            vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
            rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96})
            self._RTCRtpReceiver__codecs = {96: vp8, 97: rtx}
            self._RTCRtpReceiver__rtx_ssrc = {2: 1}

    async def go() -> tuple[list[int], int]:
        src = Receiver()
        codec = src._RTCRtpReceiver__codecs[96]
        pub = Publisher(Track(), src, codec)  # type: ignore[arg-type]
        got: list[bytes] = []
        bind_by_hand(pub.subscribe().gate, sequence_start=10, slow=lambda _, data: got.append(data))
        payload = bytes([0x90, 0x80, 0x80, 0x01, 0x00])  # a VP8 key frame's first packet
        pub.on_rtp(RtpPacket(payload_type=96, sequence_number=10, timestamp=1, ssrc=1, payload=payload))
        pub.on_rtp(RtpPacket(payload_type=96, sequence_number=11, timestamp=1, ssrc=1, payload=payload))
        probe = RtpPacket(payload_type=97, sequence_number=500, timestamp=1, ssrc=2, payload=b"\x00\x0a" + payload)
        pub.on_rtp(probe)  # packet 10 again, on the RTX stream
        repair = RtpPacket(payload_type=97, sequence_number=501, timestamp=1, ssrc=2, payload=b"\x00\x0c" + payload)
        pub.on_rtp(repair)  # packet 12, lost on the way: repaired
        pub.on_rtp(RtpPacket(payload_type=97, sequence_number=502, timestamp=1, ssrc=2, payload=b""))  # padding
        return [RtpPacket.parse(data).sequence_number for data in got], pub.duplicates  # numbered from 10 on

    assert run(go()) == ([10, 11, 12], 1)


def test_a_flooding_publisher_is_cut_to_its_ingress_budget_before_anyone_reads_it() -> None:
    from aiortc.rtp import RtpPacket

    from mcu_vm.adaptation import INGRESS_BURST_S, INGRESS_MAX_PPS

    pub = Publisher(Track(), FakeSource(), None)  # type: ignore[arg-type]
    packets = [RtpPacket(payload_type=96, sequence_number=i, timestamp=1, ssrc=1, payload=b"x" * 100) for i in range(5000)]
    admitted = sum(pub.admit(p, now=i / 5000) for i, p in enumerate(packets))  # 5,000 packets in a second
    assert admitted <= INGRESS_MAX_PPS["camera"] * (1 + INGRESS_BURST_S) + 1
    assert pub.ingress is not None and pub.ingress.dropped == 5000 - admitted
