"""Encoded forwarding on aiortc: never decode, never re-encode, never repacketize.

A publisher's RTP packets are forwarded as they arrive: the receiver's ``_handle_rtp_packet`` is
wrapped so that ``Publisher.on_rtp`` sees each packet after SRTP unprotect and before aiortc's
jitter buffer, and hands it to every subscriber's ``ForwardTrack``, which rewrites it for that
subscriber (``mcu_vm.rtp_forward``) and sends it through that subscriber's transport. aiortc's
sender on the subscriber's connection only negotiates and speaks RTCP (reports, NACKs, PLI);
its track (the ``ForwardTrack``) never yields a frame.

Frames are still assembled, once per publisher, for what needs frames: recordings (a
``Sink``) and the per-layer rates the adaptation reads. aiortc decodes every received track in
a thread (``rtcrtpreceiver.decoder_worker``); the MCU replaces that worker with one that hands
the depacketized frames on as ``av.Packet``s.

Private aiortc names this relies on (``tests/unit/test_mcu_aiortc_contract.py`` fails loudly if
they change): ``rtcrtpreceiver.decoder_worker`` (its signature), ``RTCRtpReceiver._handle_rtp_packet``
(wrapped: the packets' tap), the receiver's ``_enabled``, ``__codecs`` and ``__rtx_ssrc`` (RTX
unwrapped with ``aiortc.rtp.unwrap_rtx``), ``RTCRtpSender.send`` (wrapped: the sink is bound
once negotiated) and the sender's ``_ssrc``, ``_rtx_ssrc``, ``__ntp_timestamp``,
``__rtp_timestamp``, ``__octet_count``, ``__packet_count`` (what its sender reports carry),
``RTCRtpSender._send_keyframe`` (called on PLI/FIR from a subscriber),
``RTCRtpReceiver._send_rtcp_pli``, ``RTCRtpTransceiver._codecs``, ``aioice.ice.get_host_addresses``,
``RTCRtpReceiver._handle_rtcp_packet`` (wrapped to keep the publisher's last RTCP sender report:
recordings use it for lip sync) and the receiver's ``__timestamp_mapper._origin`` (frames'
timestamps are relative to the first one); ``RTCRtpSender._retransmit`` (wrapped: NACKs
answered from the sink's history within a ``RetransmitBudget``) and the sender's ``__rtt``; the
receiver's ``__remote_bitrate_estimator`` (switched off: publishers are told what to send by
``Publisher.ask``), ``__rtcp_ssrc`` and ``_send_rtcp`` (how that REMB goes out);
``RTCDtlsTransport._send_rtp`` (what the sink sends through; wrapped: a constrained
subscriber's video waits there for its ``Pacer``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import av
from aiortc import MediaStreamTrack, RTCRtpSender, rtcrtpreceiver
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)

from mcu_vm import _fastfwd
from mcu_vm.adaptation import DelayMeter, IngressBudget, LossMeter, Pacer, SpeechDetector, round_trip
from mcu_vm.rtp_forward import bind as bind_sink
from mcu_vm.rtp_forward import h264_keyframe, level_byte, vp8_descriptor

log = logging.getLogger("mcu.passthrough")

# Keyframes cost every subscriber of a publisher (a keyframe is several times a delta frame), so
# requests are coalesced per publisher, and one receiver cannot drive them for everyone:
KEYFRAME_REQUEST_INTERVAL_S = 0.5  # while a request is unanswered, no new PLI within this interval
KEYFRAME_REQUEST_MIN_GAP_S = 0.3  # once answered (a keyframe came), the next one no sooner than this
SUBSCRIBER_KEYFRAME_GAP_S = 2.0  # one subscriber's own requests (its PLI/FIR, its resyncs): one per this
MAX_LAYER = 2  # VP8 L1T3: temporal layers 0, 1, 2
PAUSED = -1
RATE_WINDOW_S = 2.0  # a publisher's bit rate per temporal layer, over this window
RTP_HEADER_BYTES = 12  # counted with each payload against a publisher's ingress budget
# Retransmissions (NACKs from a subscriber), per subscriber stream:
RETRANSMIT_MAX_AGE_S = 0.5  # older than this the receiver has played past it (it asks for a keyframe)
RETRANSMIT_SHARE = 0.25  # resent bytes may add at most this share of what the stream itself sent
RETRANSMIT_BURST_BYTES = 40_000  # ... with this much at once (a lost frame or two)
DEFAULT_RTT_S = 0.1  # until the receiver's reports give the round trip
# a packet is resent again only once this share of a round trip passed: its answer cannot have
# landed sooner. Browsers repeat a NACK after their own estimate of the round trip, which for a
# receive-only connection (no RTCP XR from aiortc) is their 100 ms default, a shade under the real
# one on a 100 ms path: refusing those would leave a lost retransmission unrepaired for two more.
REPEAT_AFTER_RTTS = 0.8
VIDEO_CLOCK_RATE = 90_000
SEEN_MASK = 1023  # a publisher's packets forwarded are remembered this far back (duplicates skipped)
# a video frame's packets go to each subscriber together once its last one (marker) is in; when
# that one does not come, what is held goes this long after the frame's first
FRAME_HOLD_S = 0.005
REMB_EVERY_S = 1.0  # a publisher is told what to send this often (and at once when it changes)

_installed = False
_pending: set[asyncio.Future[None]] = set()  # RTCP sends under way (kept referenced)
decoders_created = 0  # stays 0 in an MCU process: no decoder is ever built for forwarded media


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Whether a depacketized frame starts a new decodable sequence."""
    name = codec_name.lower()
    if name == "vp8":
        return len(data) > 0 and data[0] & 1 == 0  # VP8 frame tag: P bit clear
    if name == "h264":
        return any(t in (5, 7) for t in _h264_nal_types(data))  # IDR slice or SPS
    return True  # audio: every frame stands alone


def _h264_nal_types(data: bytes) -> list[int]:
    types: list[int] = []
    i = 0
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= len(data):
            return types
        types.append(data[i + 3] & 0x1F)
        i += 3


class RetransmitBudget:
    """Which NACKed packets one subscriber stream resends: only those young enough to matter
    (``RETRANSMIT_MAX_AGE_S``), never the same one again within a round trip
    (``REPEAT_AFTER_RTTS``), and only within a
    byte budget that grows with what the stream sent (``RETRANSMIT_SHARE``): a receiver on a
    lossy or thin link cannot pull more than its share into a link that already drops."""

    def __init__(self) -> None:
        self.tokens = float(RETRANSMIT_BURST_BYTES)
        self._octets_seen = 0
        self._last_resent: dict[int, float] = {}  # sequence number -> when it was last resent
        self.resent = 0
        self.resent_bytes = 0
        self.refused: dict[str, int] = {"old": 0, "repeat": 0, "budget": 0}

    def allow(self, seq: int, age_s: float, size: int, now: float, rtt_s: float | None, octets_sent: int) -> bool:
        """``age_s``: how far (in media time) the packet is behind the newest one sent;
        ``octets_sent``: the stream's payload bytes so far (the budget grows with them)."""
        self.tokens = min(float(RETRANSMIT_BURST_BYTES), self.tokens + RETRANSMIT_SHARE * max(0, octets_sent - self._octets_seen))
        self._octets_seen = max(self._octets_seen, octets_sent)
        if age_s > RETRANSMIT_MAX_AGE_S:
            self.refused["old"] += 1
            return False
        last = self._last_resent.get(seq)
        if last is not None and now - last < REPEAT_AFTER_RTTS * (rtt_s or DEFAULT_RTT_S):
            self.refused["repeat"] += 1
            return False
        if size > self.tokens:
            self.refused["budget"] += 1
            return False
        self.tokens -= size
        self._last_resent[seq] = now
        if len(self._last_resent) > 512:  # only recent ones can repeat: forget the oldest half
            for old in list(self._last_resent)[:256]:
                del self._last_resent[old]
        self.resent += 1
        self.resent_bytes += size
        return True


def vp8_temporal_layer(payload: bytes) -> int | None:
    """The TID of a VP8 RTP payload descriptor (RFC 7741), or None when it carries none."""
    if len(payload) < 2 or not payload[0] & 0x80:  # X: no extension byte
        return None
    flags, pos = payload[1], 2
    if flags & 0x80:  # I: a picture id, 7 or 15 bits
        if len(payload) <= pos:
            return None
        pos += 2 if payload[pos] & 0x80 else 1
    if flags & 0x40:  # L: TL0PICIDX
        pos += 1
    if flags & 0x20 and len(payload) > pos:  # T: TID in the top two bits of the next byte
        return payload[pos] >> 6
    return None


def passthrough_worker(
    loop: asyncio.AbstractEventLoop, input_q: queue.Queue, output_q: asyncio.Queue, decode_error: threading.Event
) -> None:
    """Drop-in for aiortc's decoder_worker: encoded frames in, ``av.Packet``s out."""
    while True:
        task = input_q.get()
        if task is None:
            loop.call_soon_threadsafe(output_q.put_nowait, None)
            break
        codec, encoded_frame = task
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        packet.is_keyframe = is_keyframe(codec.name, encoded_frame.data)
        # hand over without a coroutine and task per frame (the queue is unbounded: never blocks)
        loop.call_soon_threadsafe(output_q.put_nowait, packet)


def install() -> None:
    """Make every aiortc receiver in this process forward encoded frames (idempotent)."""
    global _installed
    if _installed:
        return
    rtcrtpreceiver.decoder_worker = passthrough_worker

    real_get_decoder = rtcrtpreceiver.get_decoder

    def counting_get_decoder(codec: Any) -> Any:  # never called once installed; counted to prove it
        global decoders_created
        decoders_created += 1
        return real_get_decoder(codec)

    rtcrtpreceiver.get_decoder = counting_get_decoder

    real_handle_rtcp = rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet

    async def keeping_sender_reports(self: Any, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):  # (NTP, RTP) of the publisher's clock per SSRC, for recordings
            # frames carry RTP timestamps minus the stream's first one (aiortc's TimestampMapper):
            # the SR's RTP timestamp is moved into that space, or the two would not match
            mapper = getattr(self, "_RTCRtpReceiver__timestamp_mapper", None)
            origin = getattr(mapper, "_origin", None)
            if origin is not None:
                reports = self.__dict__.setdefault("wm_sender_reports", {})
                rtp = (packet.sender_info.rtp_timestamp - origin) & 0xFFFFFFFF
                reports[packet.ssrc] = (packet.sender_info.ntp_timestamp, rtp)
        await real_handle_rtcp(self, packet)

    rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet = keeping_sender_reports  # type: ignore[method-assign]

    real_handle_rtp = rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet

    async def forwarding(self: Any, packet: Any, arrival_time_ms: int) -> None:
        """The publisher's packet to its subscribers first (no jitter buffer in their path),
        then aiortc's own handling: NACKs and reports to the publisher, frames for recorders."""
        publisher = self.__dict__.get("wm_publisher")
        if publisher is not None and not publisher.admit(packet):
            return  # over what any publisher may send: read by nobody (the recorder included)
        if publisher is not None and self._enabled:
            try:
                publisher.on_rtp(packet)
            except Exception:  # a forwarding bug must not end the publisher's connection
                publisher.failures += 1
                if publisher.failures == 1:  # once per publisher: its packets cannot flood the log
                    log.exception("forwarding a packet failed")
        await real_handle_rtp(self, packet, arrival_time_ms)
        codec = self._RTCRtpReceiver__codecs.get(packet.payload_type)
        if codec is None or codec.name.lower() != "vp8":
            return
        tid = vp8_temporal_layer(packet.payload)
        origin = getattr(getattr(self, "_RTCRtpReceiver__timestamp_mapper", None), "_origin", None)
        if tid is None or origin is None:
            return
        layers = self.__dict__.setdefault("wm_layers", {})  # frame timestamp (as frames carry it) -> layer
        layers[(packet.timestamp - origin) & 0xFFFFFFFF] = tid
        if len(layers) > 256:
            del layers[next(iter(layers))]

    rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet = forwarding  # type: ignore[method-assign]

    real_send = RTCRtpSender.send

    async def binding(self: Any, parameters: RTCRtpSendParameters) -> None:
        await real_send(self, parameters)
        track = self.track
        if isinstance(track, ForwardTrack):
            track.bind(self, parameters)  # negotiated: the subscriber's packets go out from now on

    RTCRtpSender.send = binding  # type: ignore[method-assign]

    real_sender_rtcp = RTCRtpSender._handle_rtcp_packet

    async def noting_estimates(self: Any, packet: Any) -> None:
        """The subscriber's receive estimate (REMB), reported loss and round trip, kept on the
        sender for the allocator."""
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                if self._ssrc in ssrcs:
                    self.wm_remb = (float(bitrate), time.monotonic())
        elif isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    now = time.monotonic()
                    meter = self.__dict__.setdefault("wm_loss_meter", LossMeter())
                    loss = meter.add(now, report.highest_sequence, report.packets_lost)
                    if loss is not None:
                        self.wm_loss = (loss, now)
                    sent_at = note_sender_report(self).get(report.lsr) if report.lsr else None
                    rtt = round_trip(time.time(), sent_at, report.dlsr) if sent_at is not None else None
                    if rtt is not None:  # its link's queue, read before it overflows
                        self.__dict__.setdefault("wm_delay_meter", DelayMeter()).add(now, rtt)
        await real_sender_rtcp(self, packet)

    RTCRtpSender._handle_rtcp_packet = noting_estimates  # type: ignore[method-assign]

    real_retransmit = RTCRtpSender._retransmit

    async def bounded_retransmit(self: Any, sequence_number: int) -> None:
        track = self.track
        sink = track.sink if isinstance(track, ForwardTrack) else None
        if sink is not None:  # forwarded packet by packet: its own history
            entry = sink.sent(sequence_number)
            if entry is None:
                return
            budget = self.__dict__.setdefault("wm_retransmit", RetransmitBudget())
            newest = sink.newest_timestamp
            age_s = ((newest - entry[2]) & 0xFFFFFFFF) / sink.clock_rate if newest is not None else 0.0
            if budget.allow(sequence_number, age_s, len(entry[0]), time.monotonic(), self._RTCRtpSender__rtt, sink.octets):
                sink.resend(sequence_number)
            return
        packet = self._RTCRtpSender__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)
        if packet is None or packet.sequence_number != sequence_number:
            return  # not in the history (aiortc would not resend it either)
        budget = self.__dict__.setdefault("wm_retransmit", RetransmitBudget())
        newest = self._RTCRtpSender__rtp_timestamp
        age_s = ((newest - packet.timestamp) & 0xFFFFFFFF) / VIDEO_CLOCK_RATE if newest is not None else 0.0
        if budget.allow(
            sequence_number,
            age_s,
            len(packet.payload) + 12,
            time.monotonic(),
            self._RTCRtpSender__rtt,
            self._RTCRtpSender__octet_count,
        ):
            await real_retransmit(self, sequence_number)

    RTCRtpSender._retransmit = bounded_retransmit  # type: ignore[method-assign]

    real_send_rtp = RTCDtlsTransport._send_rtp

    async def paced_send_rtp(self: Any, data: bytes) -> None:
        pacer: Pacer | None = self.__dict__.get("wm_pacer")
        if pacer is not None and not is_rtcp(data) and data[1] & 0x7F in self.__dict__.get("wm_paced", ()):
            wait = pacer.reserve(time.monotonic(), len(data))
            if wait:
                await asyncio.sleep(wait)
        await real_send_rtp(self, data)

    RTCDtlsTransport._send_rtp = paced_send_rtp  # type: ignore[method-assign]
    _installed = True


SENDER_REPORTS_KEPT = 8  # the sender reports a receiver report may still name (one or two a second)


def note_sender_report(sender: Any) -> dict[int, float]:
    """When each of the sender's recent reports left, by the LSR a receiver report names it with:
    aiortc keeps the newest only (its LSR and ``time.time()`` when it left), noted here each time
    RTCP comes in. A report's NTP time is its stream's last packet's (aiortc's), so a stream that
    sends nothing repeats it: such an LSR names no one report and gives no round trip."""
    times: dict[int, float] = sender.__dict__.setdefault("wm_reports_sent_at", {})
    lsr, at = sender.__dict__.get("_RTCRtpSender__lsr"), sender.__dict__.get("_RTCRtpSender__lsr_time")
    if lsr is None or at is None:
        return times
    if lsr in times and times[lsr] != at:
        times[lsr] = -1.0  # the same LSR left twice: ambiguous
    elif lsr not in times:
        times[lsr] = at
        while len(times) > SENDER_REPORTS_KEPT:
            del times[next(iter(times))]
    return {k: v for k, v in times.items() if v >= 0}


def pace(transport: Any, pacer: Pacer | None, payload_types: set[int]) -> None:
    """Send ``payload_types`` (video and its retransmissions) over ``transport`` through
    ``pacer`` (None: unpaced). Audio and RTCP are never paced."""
    transport.wm_pacer = pacer
    transport.wm_paced = frozenset(payload_types)


def media_ssrc(receiver: Any) -> int | None:
    """The SSRC carrying the publisher's media: an active source that is not a retransmission
    (RTX) stream. Keyframe requests and sender reports must name this one; Chromium also sends
    on its RTX SSRC (padding probes), which aiortc lists among the active sources."""
    rtx = set(getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", None) or {})
    for source in receiver.getSynchronizationSources():
        if source.source not in rtx:
            return int(source.source)
    return None


class Sink(Protocol):
    """What a publisher hands its frames to: a subscriber's ``ForwardTrack``, a recorder."""

    def push(self, packet: av.Packet, layer: int | None = None) -> None: ...

    def stop(self) -> None: ...


class ForwardTrack(MediaStreamTrack):
    """What one subscriber receives of one publisher's track, forwarded packet by packet
    (``mcu_vm.rtp_forward``): the track of the subscriber's aiortc sender, which only
    negotiates it; once negotiated (``bind``) the packets go out through its native ``Sink``
    (``gate``), which the publisher's ``on_rtp`` hands every packet, with everybody else's.

    Per frame (the first packet of a timestamp decides for all of its packets): video starts at
    a keyframe; a subscriber gets the temporal layers up to ``layer``. What this subscriber asks
    for itself (its decoder's PLI/FIR, a resumed stream) goes to the publisher at most once per
    ``SUBSCRIBER_KEYFRAME_GAP_S``: a lossy receiver waits for its keyframe, it does not fill
    everybody else's stream with them. A request held back is sent when the gap ends, unless a
    keyframe reached this subscriber meanwhile.
    """

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._request_keyframe = request_keyframe
        self._ended = asyncio.Event()
        # what this subscriber is sent, decided and sent packet by packet in native code: frames
        # from a keyframe on; the temporal layers up to ``layer`` (PAUSED: none). A change down
        # applies at once (no frame depends on a higher layer); up, at the next base-layer frame
        # (what follows it refers to nothing it missed); from paused, at a keyframe
        self.gate = _fastfwd.Sink(kind == "video")
        self.keyframe_asks = 0  # requests this subscriber passed on to the publisher
        self.keyframe_asks_held = 0  # and those it held back (within the gap)
        self._last_ask = float("-inf")
        self._deferred: asyncio.TimerHandle | None = None

    @property
    def sink(self) -> _fastfwd.Sink | None:
        """The native sink once negotiated (``bind``), else None."""
        return self.gate if self.gate.bound else None

    @property
    def layer(self) -> int:
        return self.gate.layer

    @property
    def target_layer(self) -> int:
        return self.gate.target_layer

    @property
    def waiting_for_keyframe(self) -> bool:
        return self.gate.waiting_for_keyframe

    @property
    def frames(self) -> int:
        """Frames admitted (video)."""
        return self.gate.frames

    @property
    def forwarded(self) -> int:
        """Packets sent."""
        return self.gate.forwarded

    @property
    def dropped(self) -> int:
        """Frames dropped while waiting for a keyframe."""
        return self.gate.dropped

    @property
    def paused_frames(self) -> int:
        return self.gate.paused_frames

    @property
    def layer_frames_dropped(self) -> int:
        return self.gate.layer_frames_dropped

    def bind(self, sender: Any, parameters: Any) -> None:
        """The subscriber's sender is negotiated: packets go out through it from now on."""
        if not self.gate.bound:
            bind_sink(self.gate, sender, parameters)

    def set_layer(self, layer: int) -> None:
        gate = self.gate
        if self.kind != "video" or layer == gate.target_layer:
            return
        gate.target_layer = layer
        if layer < gate.layer:
            gate.layer = layer
        if layer != PAUSED and gate.layer == PAUSED:
            gate.waiting_for_keyframe = True
            self._ask()

    def resync(self) -> None:
        """Start again at the next keyframe (the publisher was held, its stream broke off)."""
        if self.kind == "video":
            self.gate.waiting_for_keyframe = True

    def admit(self, keyframe: bool, layer: int | None) -> bool:
        """Whether this subscriber gets a video frame (a keyframe or not, of temporal layer
        ``layer``): what the native path decides at each frame's first packet."""
        verdict = self.gate.admit(keyframe, -1 if layer is None else layer)
        if verdict == 2:
            self._ask()
        return verdict == 1

    def keyframe_requested(self) -> None:
        """A PLI/FIR from the subscriber: its decoder lost sync."""
        self._ask()

    def _ask(self) -> None:
        if self.kind != "video":
            return
        self.gate.wants_keyframe = True
        wait = self._last_ask + SUBSCRIBER_KEYFRAME_GAP_S - time.monotonic()
        if wait > 0:
            self.keyframe_asks_held += 1
            if self._deferred is None:
                self._deferred = asyncio.get_running_loop().call_later(wait, self._deferred_ask)
            return
        self._last_ask = time.monotonic()
        self.keyframe_asks += 1
        self._request_keyframe()

    def _deferred_ask(self) -> None:
        self._deferred = None
        if self.readyState == "live" and (self.gate.wants_keyframe or self.gate.waiting_for_keyframe):
            self._ask()

    async def recv(self) -> av.Packet:  # type: ignore[override]
        """Never yields a frame (packets go out through the sink); ends when the track does."""
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self.gate.live = False
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        self._ended.set()


class Fanout:
    """One track's packets to this worker's subscribers of it: every subscriber's ``ForwardTrack``
    in one native pass per packet (``fan_out``). A ``Publisher`` reads the packets off its
    publisher's connection; a ``mcu_vm.span.MirrorPublisher`` gets them down a pipe from the
    worker that does (a room larger than one worker)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.forwards: set[ForwardTrack] = set()  # subscribers' copies, packet by packet
        self._gates: tuple[_fastfwd.Sink, ...] = ()  # their native sinks, in one tuple for the pass
        self._by_gate: dict[_fastfwd.Sink, ForwardTrack] = {}
        self._flush: asyncio.TimerHandle | None = None

    def request_keyframe(self) -> None:
        raise NotImplementedError

    def fan_out(
        self,
        seq: int,
        ts: int,
        marker: bool,
        payload: bytes,
        keyframe: bool,
        layer: int,
        pid_at: int,
        pid_bits: int,
        level: int,
        held: bool,
    ) -> None:
        """One packet, read once (its frame's kind, layer, picture id), to every subscriber."""
        asks, pending = _fastfwd.forward(self._gates, seq, ts, marker, payload, keyframe, layer, pid_at, pid_bits, level, held)
        for gate in asks or ():  # they dropped a frame waiting for a keyframe
            fwd = self._by_gate.get(gate)
            if fwd is not None:
                fwd._ask()
        if pending and self._flush is None:  # a frame's packets held for its last one: not for long
            self._flush = asyncio.get_running_loop().call_later(FRAME_HOLD_S, self._flush_held)

    def _flush_held(self) -> None:
        """Send what is held of a frame whose last packet did not come (lost, late, dropped)."""
        self._flush = None
        _fastfwd.flush(self._gates)

    def subscribe(self) -> ForwardTrack:
        fwd = ForwardTrack(self.kind, self.request_keyframe)
        self.forwards.add(fwd)
        self._by_gate[fwd.gate] = fwd
        self._gates = tuple(self._by_gate)
        # no keyframe asked for yet: one that came before its connection is up would be spent on
        # nobody. Its first frame once connected is dropped for want of one, and that asks
        return fwd

    def unsubscribe(self, fwd: ForwardTrack) -> None:
        self.forwards.discard(fwd)
        self._by_gate.pop(fwd.gate, None)
        self._gates = tuple(self._by_gate)
        fwd.stop()

    def end(self) -> None:
        """Every subscriber's copy ends (the track did)."""
        if self._flush:
            self._flush.cancel()
            self._flush = None
        for fwd in list(self.forwards):
            fwd.stop()


class Pipe(Protocol):
    """Where a publisher's packets go for another worker's subscribers (``mcu_vm.span.PipeOut``)."""

    def send(
        self,
        pipe_id: int,
        seq: int,
        ts: int,
        marker: bool,
        payload: bytes,
        keyframe: bool,
        layer: int,
        pid_at: int,
        pid_bits: int,
        level: int,
        held: bool,
    ) -> None: ...


_pipe_ids = itertools.count(1)


class Publisher(Fanout):
    """One incoming encoded track: its RTP packets fanned out to every subscriber's
    ``ForwardTrack`` as they arrive (``on_rtp``) and down the pipes to other workers'
    subscribers, its frames (aiortc's jitter buffer, the passthrough worker) to frame sinks (a
    recorder) and its per-layer rates."""

    def __init__(self, track: MediaStreamTrack, receiver: Any, codec: Any) -> None:
        super().__init__(track.kind)
        self.track = track
        self.receiver = receiver
        self.codec = codec  # the negotiated RTCRtpCodecParameters
        self.subscribers: set[Sink] = set()  # frame sinks (recorders)
        self.pipe_id = next(_pipe_ids)  # how the other workers' mirrors of it know its packets
        self.pipes: dict[Pipe, int] = {}  # to other workers: how many of their subscriptions take it
        self._pipes: tuple[Pipe, ...] = ()
        self._piped_held = False  # the pipes were told it is held (its packets are not piped then)
        self._seen: dict[int, int] = {}  # the sequence numbers of the last SEEN_MASK + 1 packets forwarded
        self.duplicates = 0
        self.failures = 0  # packets whose forwarding raised (logged once)
        self.codec_name = codec.name.lower() if codec is not None else ""
        receiver.__dict__["wm_publisher"] = self  # its packets come to on_rtp (install())
        self._last_keyframe_request = 0.0
        self._keyframe_since_request = True
        self._deferred: asyncio.TimerHandle | None = None
        self.keyframe_requests = 0
        self._task: asyncio.Task[None] | None = None
        self.held = False  # forward nothing (the participant's microphone or camera is off)
        self.source = "camera"  # or "screen": a shared screen (set by the room)
        self.joined_at = time.monotonic()
        self.layered = False  # its frames carry temporal layers (VP8 with a temporal scalability mode)
        self.target_bps: float | None = None  # what it was last asked to send (REMB)
        self._target_sent_at = 0.0
        if self.kind == "video":
            # what it is asked to send follows its subscribers (``ask``), not aiortc's estimate of
            # the uplink (a delay-based estimator in a busy event loop reads its own lag as congestion)
            receiver._RTCRtpReceiver__remote_bitrate_estimator = None
        self._recent: collections.deque[tuple[float, int, int]] = collections.deque()  # (time, layer, bytes)
        self.ingress: IngressBudget | None = None  # made at the first packet (the room sets ``source`` first)
        self.speech = SpeechDetector()  # an audio publisher: when it last spoke

    def layer_rates(self, now: float | None = None) -> list[float]:
        """Bit rate with layers 0..i, over the last ``RATE_WINDOW_S`` (one entry without layers)."""
        now = time.monotonic() if now is None else now
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        per = [0.0] * (MAX_LAYER + 1)
        for _, layer, size in self._recent:
            per[min(layer, MAX_LAYER)] += size * 8 / RATE_WINDOW_S
        if not self.layered:
            return [sum(per)]
        top = max((i for i, r in enumerate(per) if r > 0), default=0)
        return [sum(per[: i + 1]) for i in range(top + 1)]

    def ask(self, bps: float, now: float) -> None:
        """Tell the publisher the bit rate to send (a REMB): when it changes, and once a second."""
        changed = self.target_bps is None or abs(bps - self.target_bps) > 0.1 * self.target_bps
        ssrc = media_ssrc(self.receiver)
        rtcp_ssrc = getattr(self.receiver, "_RTCRtpReceiver__rtcp_ssrc", None)
        if ssrc is None or rtcp_ssrc is None or (not changed and now - self._target_sent_at < REMB_EVERY_S):
            return
        self.target_bps = bps
        self._target_sent_at = now
        remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(int(bps), [ssrc]))
        sent = asyncio.ensure_future(self.receiver._send_rtcp(remb))
        _pending.add(sent)
        sent.add_done_callback(_pending.discard)

    def hold(self, held: bool) -> None:
        """Stop or resume forwarding; video resumes at a keyframe."""
        if held == self.held:
            return
        self.held = held
        if not held and self.kind == "video":
            for fwd in self.forwards:
                fwd.resync()
            self.request_keyframe()

    def admit(self, packet: Any, now: float | None = None) -> bool:
        """Within what a publisher of its kind may send at all (``IngressBudget``)."""
        if self.ingress is None:
            self.ingress = IngressBudget.of(self.kind, self.source)
        if self.ingress.admit(len(packet.payload) + RTP_HEADER_BYTES, time.monotonic() if now is None else now):
            return True
        if self.ingress.dropped == 1:  # once per publisher: its flood cannot flood the log
            log.warning("a %s publisher sends more than any may (%d bit/s): its excess is dropped", self.kind, self.ingress.bps)
        return False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def on_rtp(self, packet: Any) -> None:
        """One packet as it arrived from the publisher (after SRTP unprotect), to every
        subscriber: what it says is read once here, rewritten per subscriber in ``forward``."""
        level = packet.extensions.audio_level
        if level is not None and not self.held:
            self.speech.add(level[1], time.monotonic())  # subscribers' last N follows the speakers
        if not self._gates and not self._pipes:
            return
        codecs = self.receiver.__dict__.get("_RTCRtpReceiver__codecs") or {}
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        if is_rtx(codec):  # a retransmission the publisher sent: the packet it repairs
            original = (self.receiver.__dict__.get("_RTCRtpReceiver__rtx_ssrc") or {}).get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original is None or len(packet.payload) < 2 or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original)
        if not packet.payload:
            return  # padding (a bandwidth probe): nothing to forward
        seq = packet.sequence_number
        if self._seen.get(seq & SEEN_MASK) == seq:
            self.duplicates += 1
            return  # had it already (a retransmission that crossed the original, an RTX probe)
        self._seen[seq & SEEN_MASK] = seq
        keyframe, layer, pid_at, pid_bits = False, -1, -1, 0
        if self.kind == "video":
            if self.codec_name == "vp8":
                vp8 = vp8_descriptor(packet.payload)
                if vp8 is None:
                    return
                keyframe = vp8.keyframe
                layer = -1 if vp8.temporal_layer is None else vp8.temporal_layer
                if vp8.picture_id_at is not None:
                    pid_at, pid_bits = vp8.picture_id_at, vp8.picture_id_bits
            elif self.codec_name == "h264":
                keyframe = h264_keyframe(packet.payload)
        level, held, payload = level_byte(packet.extensions.audio_level), self.held, packet.payload
        if self._pipes and not (held and self._piped_held):  # held: the mirrors are told once
            self._piped_held = held
            for pipe in self._pipes:
                pipe.send(
                    self.pipe_id, seq, packet.timestamp, packet.marker, payload, keyframe, layer, pid_at, pid_bits, level, held
                )
        if self._gates:
            self.fan_out(seq, packet.timestamp, packet.marker, payload, keyframe, layer, pid_at, pid_bits, level, held)

    def pipe(self, pipe: Pipe) -> None:
        """Another worker has a subscriber of this track (called once per subscription there)."""
        self.pipes[pipe] = self.pipes.get(pipe, 0) + 1
        self._pipes = tuple(self.pipes)
        self._piped_held = False

    def unpipe(self, pipe: Pipe) -> None:
        left = self.pipes.get(pipe, 0) - 1
        if left > 0:
            self.pipes[pipe] = left
        else:
            self.pipes.pop(pipe, None)
        self._pipes = tuple(self.pipes)

    async def _run(self) -> None:
        try:
            while True:
                packet = await self.track.recv()
                if not isinstance(packet, av.Packet):
                    raise TypeError("a decoded frame reached the forwarder: passthrough.install() was not called")
                if packet.is_keyframe:
                    self._keyframe_since_request = True
                layer = None
                if self.kind == "video":
                    layer = (self.receiver.__dict__.get("wm_layers") or {}).get(packet.pts)
                    self.layered = layer is not None
                    self._recent.append((time.monotonic(), layer or 0, packet.size))
                    if len(self._recent) > 4096:
                        self._recent.popleft()
                if self.held:
                    continue
                for sub in list(self.subscribers):
                    sub.push(packet, layer)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            for sub in list(self.subscribers):
                sub.stop()
            self.end()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (PLI). An unanswered request is not repeated within
        the interval (no PLI storms when many subscribers wait); an answered one may be followed
        by the next almost at once, so back-to-back joiners are not kept waiting. A request that
        falls inside the interval is deferred to its end, never lost."""
        if self.kind != "video":
            return
        now = time.monotonic()
        gap = KEYFRAME_REQUEST_MIN_GAP_S if self._keyframe_since_request else KEYFRAME_REQUEST_INTERVAL_S
        wait = self._last_keyframe_request + gap - now
        if wait > 0:
            if self._deferred is None:
                self._deferred = asyncio.get_running_loop().call_later(wait, self._deferred_request)
            return
        self._last_keyframe_request = now
        self._keyframe_since_request = False
        ssrc = media_ssrc(self.receiver)
        if ssrc is None:
            return
        self.keyframe_requests += 1
        asyncio.ensure_future(self.receiver._send_rtcp_pli(ssrc))

    def _deferred_request(self) -> None:
        self._deferred = None
        self.request_keyframe()

    async def stop(self) -> None:
        if self._deferred:
            self._deferred.cancel()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for sub in list(self.subscribers):
            sub.stop()
        self.end()
