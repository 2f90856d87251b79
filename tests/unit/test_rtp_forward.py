"""RTP-level forwarding (mcu_vm.rtp_forward and its native sink, mcu_vm/_fastfwd.c): what a
packet says, and what each subscriber is sent, read back with aiortc's own RTP parser; through
a real SRTP session and a UDP socket on loopback for the straight path."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from mcu_vm import _fastfwd
from mcu_vm.passthrough import ForwardTrack
from mcu_vm.rtp_forward import (
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    bind,
    extension_block,
    h264_keyframe,
    level_byte,
    rewrite_picture_id,
    vp8_descriptor,
)


def vp8_payload(*, start: bool, key: bool, picture_id: int, tid: int, body: bytes = b"frame") -> bytes:
    """X=1, S as asked, partition 0; I (15-bit picture id), L, T; then the VP8 frame tag."""
    first = 0x80 | (0x10 if start else 0)
    flags = 0x80 | 0x40 | 0x20
    return bytes([first, flags, 0x80 | (picture_id >> 8), picture_id & 0xFF, 7, tid << 6]) + bytes([0x00 if key else 0x01]) + body


def test_vp8_descriptor_reads_frame_starts_keyframes_layers_and_the_picture_id() -> None:
    key = vp8_descriptor(vp8_payload(start=True, key=True, picture_id=300, tid=0))
    assert key is not None and key.start and key.keyframe and key.temporal_layer == 0
    assert key.picture_id_at == 2 and key.picture_id_bits == 15
    delta = vp8_descriptor(vp8_payload(start=True, key=False, picture_id=301, tid=2))
    assert delta is not None and delta.start and not delta.keyframe and delta.temporal_layer == 2
    middle = vp8_descriptor(vp8_payload(start=False, key=False, picture_id=300, tid=0, body=b"\x00rest"))
    assert middle is not None and not middle.start and not middle.keyframe  # a key frame's second packet is not a start
    plain = vp8_descriptor(bytes([0x10, 0x00]))  # no extension: a start, a key frame, no layers
    assert plain is not None and plain.keyframe and plain.temporal_layer is None and plain.picture_id_at is None
    assert vp8_descriptor(b"") is None and vp8_descriptor(bytes([0x90, 0x80])) is None  # cut short


def test_h264_keyframes_in_single_nal_stap_a_and_fu_a_packets() -> None:
    assert h264_keyframe(bytes([0x65, 1, 2]))  # IDR slice
    assert not h264_keyframe(bytes([0x41, 1, 2]))  # a P slice
    stap = bytes([0x78]) + struct.pack("!H", 3) + bytes([0x67, 1, 2]) + struct.pack("!H", 2) + bytes([0x68, 1])
    assert h264_keyframe(stap)  # SPS and PPS ahead of an IDR
    assert h264_keyframe(bytes([0x7C, 0x85, 9]))  # FU-A start of an IDR
    assert not h264_keyframe(bytes([0x7C, 0x05, 9]))  # ... its middle
    assert not h264_keyframe(b"")


def test_picture_ids_move_back_by_the_frames_not_sent_and_wrap() -> None:
    payload = vp8_payload(start=True, key=False, picture_id=5, tid=0)
    moved = vp8_descriptor(rewrite_picture_id(payload, 2, 15, 7))
    out = rewrite_picture_id(payload, 2, 15, 7)
    assert moved is not None and ((out[2] & 0x7F) << 8 | out[3]) == (5 - 7) & 0x7FFF and out[2] & 0x80
    assert out[4:] == payload[4:]
    assert rewrite_picture_id(payload, 2, 15, 0) is payload
    seven = bytes([0x90, 0x80, 0x03, 0x00])
    assert rewrite_picture_id(seven, 2, 7, 5)[2] == (3 - 5) & 0x7F


def _sink(video: bool = True, sequence_start: int = 0, transport: Any = None) -> _fastfwd.Sink:
    """A native sink bound by hand (no aiortc sender): what it sends goes to ``transport``."""
    sink = _fastfwd.Sink(video)
    sink.bind(
        ssrc=1111,
        rtx_ssrc=2222,
        payload_type=97,
        rtx_payload_type=98,
        clock_rate=90000,
        mid=b"4",
        mid_id=1,
        abs_send_time_id=3,
        audio_level_id=2,
        sequence_start=sequence_start,
        timestamp_offset=0,
        rtx_sequence=0,
        sender_dict={},
        transport=transport if transport is not None else Transport(),
        connected=State.CONNECTED,
        nominated=None,
        resolve=lambda sink: None,
        slow=lambda sink, data: None,
    )
    return sink


def test_sequence_numbers_stay_contiguous_over_what_is_sent() -> None:
    seq = _sink(sequence_start=65534)
    assert [seq.forward_sequence(n) for n in (100, 101)] == [65534, 65535]
    seq.drop(102)  # a frame this subscriber does not get: no number taken
    seq.drop(103)
    assert seq.forward_sequence(104) == 0  # wraps, no gap
    assert seq.forward_sequence(107) == 3  # the publisher lost 105 and 106: the gap stays (a retransmission may fill it)
    assert seq.forward_sequence(105) == 1 and seq.forward_sequence(106) == 2  # ... and does
    assert seq.forward_sequence(101) == 65535  # a copy of one sent: the same number
    assert seq.forward_sequence(102) is None  # one that was dropped: still not sent
    seq.drop(109)  # lost 108, then a dropped frame: 108's number kept
    assert seq.forward_sequence(110) == 5 and seq.forward_sequence(108) == 4  # ... and it lands there when it comes
    for n in range(111, 111 + 256 + 1):  # more drops than are remembered
        seq.drop(n)
    assert seq.forward_sequence(110) is None  # from before what is remembered: not placed


def _parameters(kind: str = "video") -> RTCRtpSendParameters:
    if kind == "video":
        codecs = [
            RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97),
            RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=98, parameters={"apt": 97}),
        ]
    else:
        codecs = [RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)]
    return RTCRtpSendParameters(
        codecs=codecs,
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri=URI_MID),
            RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME),
            RTCRtpHeaderExtensionParameters(id=2, uri=URI_AUDIO_LEVEL),
        ],
        muxId="4",
    )


class Transport:
    """What the sink sends through (the subscriber's RTCDtlsTransport._send_rtp), recorded: no
    ICE connection the sink could read, so everything takes the slow path."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self._state = State.CONNECTED

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


class Sender:
    def __init__(self) -> None:
        self.transport = Transport()
        self._ssrc = 1111
        self._rtx_ssrc = 2222


def _parse(data: bytes) -> RtpPacket:
    extensions = HeaderExtensionsMap()
    extensions.configure(_parameters())
    return RtpPacket.parse(data, extensions)


def test_a_subscriber_gets_its_own_ssrc_numbers_payload_type_mid_and_fresh_send_time() -> None:
    sender = Sender()
    sink = _fastfwd.Sink(True)
    bind(sink, sender, _parameters())

    async def go() -> None:
        sink.send(500, 90_000, 0, b"first", -1)
        sink.send(501, 90_000, 1, b"second", level_byte((True, 30)))
        await asyncio.sleep(0)  # a transport it cannot send through directly: sent in a task

    asyncio.run(go())
    first, second = (_parse(d) for d in sender.transport.sent)
    assert first.ssrc == second.ssrc == 1111 and first.payload_type == 97
    assert (second.sequence_number - first.sequence_number) & 0xFFFF == 1
    assert first.timestamp == (90_000 + sink.timestamp_offset) & 0xFFFFFFFF and second.marker == 1
    assert first.extensions.mid == "4" and first.extensions.abs_send_time is not None
    assert second.extensions.audio_level == (True, 30) and first.payload == b"first"
    # what aiortc's sender reports (RTCP SR, getStats) follows what went out
    assert sender.__dict__["_RTCRtpSender__packet_count"] == 2
    assert sender.__dict__["_RTCRtpSender__octet_count"] == len(b"first") + len(b"second")
    assert sender.__dict__["_RTCRtpSender__rtp_timestamp"] == second.timestamp


def test_a_nacked_packet_is_resent_on_the_rtx_stream_with_its_sequence_number_first() -> None:
    sender = Sender()
    sink = _fastfwd.Sink(True)
    bind(sink, sender, _parameters())

    async def go() -> None:
        sink.send(500, 90_000, 1, b"lost", -1)
        await asyncio.sleep(0)
        original = _parse(sender.transport.sent[0])
        sink.resend(original.sequence_number)
        sink.resend((original.sequence_number + 1) & 0xFFFF)  # never sent: nothing
        await asyncio.sleep(0)

    asyncio.run(go())
    assert len(sender.transport.sent) == 2
    original, rtx = (_parse(d) for d in sender.transport.sent)
    assert rtx.ssrc == 2222 and rtx.payload_type == 98 and rtx.timestamp == original.timestamp and rtx.marker == 1
    assert rtx.payload == struct.pack("!H", original.sequence_number) + b"lost"
    assert rtx.extensions.mid == "4"


def test_a_forward_track_sends_a_frame_whole_or_not_at_all_with_contiguous_picture_ids() -> None:
    async def go() -> list[RtpPacket]:
        fwd = ForwardTrack("video", lambda: None)
        sender = Sender()
        fwd.bind(sender, _parameters())
        fwd.set_layer(0)  # base layer only

        frames = [(0, True), (2, False), (1, False), (2, False), (0, False)]  # L1T3
        seq = 10
        for i, (tid, key) in enumerate(frames):
            for part in range(2):  # two packets a frame
                payload = vp8_payload(start=part == 0, key=key, picture_id=100 + i, tid=tid)
                vp8 = vp8_descriptor(payload)
                assert vp8 is not None
                pid_at = vp8.picture_id_at if vp8.picture_id_at is not None else -1
                _fastfwd.forward(
                    (fwd.gate,), seq, 3000 * i, 1, payload, key and part == 0, tid, pid_at, vp8.picture_id_bits, -1, False
                )
                seq += 1
        await asyncio.sleep(0)
        fwd.stop()
        return [_parse(d) for d in sender.transport.sent]

    sent = asyncio.run(go())
    assert len(sent) == 4  # the two base frames, two packets each
    numbers = [p.sequence_number for p in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(numbers, numbers[1:], strict=False))
    pids = [((p.payload[2] & 0x7F) << 8) | p.payload[3] for p in sent]
    assert pids == [100, 100, 101, 101]  # frame 4 (picture id 104) comes as 101: three frames not sent


def test_packets_from_a_publisher_reach_no_subscriber_before_it_is_negotiated() -> None:
    async def go() -> int:
        fwd = ForwardTrack("audio", lambda: None)
        assert _fastfwd.forward((fwd.gate,), 1, 1, 0, b"x", False, -1, -1, 0, -1, False) == (None, False)  # no sink yet
        fwd.stop()
        return fwd.forwarded

    assert asyncio.run(go()) == 0


def test_the_precomputed_extension_block_is_the_one_built_from_its_elements() -> None:
    sink = _fastfwd.Sink(True)
    bind(sink, Sender(), _parameters())
    ntp = 0x1234_5678_9ABC_DEF0
    sent_at = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
    for level, elements in [
        (None, [(1, b"4"), (3, sent_at)]),
        ((True, 42), [(1, b"4"), (3, sent_at), (2, bytes([0x80 | 42]))]),
        ((False, 127), [(1, b"4"), (3, sent_at), (2, bytes([127]))]),
    ]:
        data = sink.build(7, 9, 1, b"payload", level_byte(level), ntp)
        assert data[12:] == extension_block(elements) + b"payload", level
        parsed = _parse(data)
        assert parsed.extensions.abs_send_time == (ntp >> 14) & 0xFFFFFF and parsed.extensions.audio_level == level


def test_whatever_a_publisher_sends_the_parsers_answer_without_raising() -> None:
    """A publisher's payloads are its own to forge: cut, random, or lying about their sizes."""
    import random

    rnd = random.Random(17)
    for _ in range(20_000):
        payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(12)))
        descriptor = vp8_descriptor(payload)
        if descriptor is not None and descriptor.picture_id_at is not None:  # within the payload
            rewrite_picture_id(payload, descriptor.picture_id_at, descriptor.picture_id_bits, 3)
        h264_keyframe(payload)
    assert not h264_keyframe(bytes([0x78, 0x00, 0x00, 0x00, 0x00, 0x00]))  # STAP-A of empty units: ends


class Straight:
    """A native sink with a straight route: a real SRTP session (and its receiving twin), a UDP
    socket on loopback to send from and one to receive on, the DTLS and ICE state it reads."""

    def __init__(self, video: bool) -> None:
        import socket

        from pylibsrtp import Policy, Session

        from mcu_vm.rtp_forward import _PROTECT, _srtp_ffi

        key = bytes(range(30))
        self.tx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        self.rx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        self.receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receiver.bind(("127.0.0.1", 0))
        self.receiver.settimeout(2)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp = type("Udp", (), {"_closing": False})()
        self.dtls = type("Dtls", (), {})()
        self.dtls._state, self.dtls._tx_srtp = State.CONNECTED, self.tx
        self.pairs = [object(), object()]
        self.nominated: dict[int, Any] = {1: self.pairs[0]}
        self.resolved: list[Any] = []

        def resolve(sink: _fastfwd.Sink) -> None:
            self.resolved.append(self.nominated[1])
            ctx = int(_srtp_ffi.cast("uintptr_t", self.tx._srtp[0]))
            port = self.receiver.getsockname()[1]
            sink.set_route(self.nominated[1], self.udp, self.out.fileno(), "127.0.0.1", port, self.tx, ctx, _PROTECT)

        self.sink = _fastfwd.Sink(video)
        self.sink.bind(
            ssrc=4242, rtx_ssrc=0, payload_type=111, rtx_payload_type=-1, clock_rate=48000, mid=b"", mid_id=0,
            abs_send_time_id=0, audio_level_id=0, sequence_start=7, timestamp_offset=10, rtx_sequence=0,
            sender_dict={}, transport=self.dtls, connected=State.CONNECTED, nominated=self.nominated,
            resolve=resolve, slow=lambda s, data: pytest.fail("a straight route took the slow path"),
        )  # fmt: skip

    def forward(self, seq: int, timestamp: int, marker: int, keyframe: bool = False) -> tuple[Any, bool]:
        return _fastfwd.forward((self.sink,), seq, timestamp, marker, b"frame", keyframe, -1, -1, 0, -1, False)

    def received(self, timeout: float = 2) -> RtpPacket | None:
        self.receiver.settimeout(timeout)
        try:
            return RtpPacket.parse(self.rx.unprotect(self.receiver.recv(2048)))
        except TimeoutError:
            return None

    def close(self) -> None:
        self.receiver.close()
        self.out.close()


def test_the_straight_path_protects_with_the_subscribers_srtp_session_and_sends_to_its_pair() -> None:
    """The native sink's own send: libsrtp's ``srtp_protect`` (pylibsrtp's, by its address) on
    the subscriber's session, ``sendto`` the nominated pair's address from its socket; a new pair
    is resolved before the next packet, a closing socket or a lost connection gets nothing."""
    audio = Straight(video=False)
    assert audio.forward(1, 960, 1) == (None, False)
    packet = audio.received()
    assert packet is not None
    assert (packet.ssrc, packet.sequence_number, packet.timestamp, packet.payload) == (4242, 7, 970, b"frame")
    audio.nominated[1] = audio.pairs[1]  # a new pair (an ICE restart): resolved again before it is used
    audio.forward(2, 1920, 1)
    again = audio.received()
    assert again is not None and again.sequence_number == 8 and audio.resolved == audio.pairs
    assert audio.sink.sent_direct == 2 and audio.dtls.__dict__["_RTCDtlsTransport__tx_packets"] == 2
    audio.udp._closing = True  # its socket is closing: nothing more goes to it
    audio.forward(3, 2880, 1)
    audio.udp._closing = False
    audio.dtls._state = State.CLOSED  # the subscriber's connection is gone: nothing either
    audio.forward(4, 3840, 1)
    assert audio.received(timeout=0.2) is None
    assert audio.sink.sent_direct == 2 and audio.sink.forwarded == 4  # numbered and kept, not sent
    audio.close()


def test_a_video_frames_packets_go_together_once_its_last_is_in() -> None:
    """One ``sendmmsg`` per frame and subscriber: nothing leaves before the frame's marker packet
    (or the next frame's first, or ``flush`` when the marker never comes), then all of it, in order."""
    video = Straight(video=True)
    assert video.forward(1, 3000, 0, keyframe=True) == (None, True)  # held: flush soon
    video.forward(2, 3000, 0)
    assert video.received(timeout=0.1) is None and video.sink.held == 2
    assert video.forward(3, 3000, 1) == (None, False)  # the frame's last: all three go
    assert [p.sequence_number for p in (video.received(), video.received(), video.received()) if p] == [7, 8, 9]
    video.forward(4, 6000, 0)  # a frame whose marker is lost ...
    video.forward(6, 9000, 0)  # ... goes when the next one starts
    first = video.received()
    assert first is not None and first.timestamp == 6010 and video.sink.held == 1
    _fastfwd.flush((video.sink,))  # the publisher's timer: what is held goes
    last = video.received()
    assert last is not None and last.timestamp == 9010 and video.sink.held == 0
    assert video.sink.batches == 3 and video.sink.sent_direct == 5 and video.sink.send_errors == 0
    video.close()


def test_whatever_a_publisher_sends_the_native_path_forwards_or_drops_without_harm() -> None:
    """Forged payloads (cut, random, a picture id said to be past the end, too big to forward)
    through the native pass: it never raises, never writes past what it was given, and what it
    sends carries the payload as it came (or its picture id rewritten)."""
    import random

    rnd = random.Random(23)
    transport = Transport()
    sinks = (_sink(True, transport=transport), _sink(False, transport=transport))
    sent = 0
    for n in range(5_000):
        payload = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 3, 8, 40, 1600])))
        pid_at = rnd.choice([-1, 0, 2, len(payload) - 1, len(payload), 10_000])
        _fastfwd.forward(sinks, n & 0xFFFF, n // 3 * 3000, n % 3 == 2, payload, n % 50 == 0, rnd.choice([-1, 0, 1, 2, 7]),
                         pid_at, rnd.choice([7, 15]), rnd.choice([-1, 0x85]), False)  # fmt: skip
    for sink in sinks:
        sent += sink.packets
        assert sink.too_big > 0  # 1,600-byte payloads are not forwarded
    assert sent > 1_000 and sinks[1].forwarded == sinks[1].packets


def test_a_keyframe_that_comes_before_the_subscriber_is_connected_is_not_spent_on_it() -> None:
    """Until its DTLS transport is up a subscriber could receive nothing: no frame is decided
    for it, so a keyframe then leaves it waiting; its first frame once connected, a delta, is
    dropped and asks for one."""
    video = Straight(video=True)
    video.dtls._state = State.NEW
    assert video.forward(1, 3000, 1, keyframe=True) == (None, False)
    assert video.sink.waiting_for_keyframe and video.sink.frames == 0 and video.sink.packets == 0
    video.dtls._state = State.CONNECTED
    asks, _ = video.forward(2, 6000, 1)
    assert asks == [video.sink] and video.sink.waiting_for_keyframe
    video.forward(3, 9000, 1, keyframe=True)
    got = video.received()
    assert got is not None and got.timestamp == 9010 and not video.sink.waiting_for_keyframe
    video.close()
