"""Encoded passthrough forwarding on aiortc: never decode, never re-encode.

aiortc decodes every received track in a thread (``rtcrtpreceiver.decoder_worker``) and
encodes every sent frame. The MCU replaces the decoder worker with one that hands the
depacketized frames on as ``av.Packet``s, and its senders pack those packets with the codec's
``pack()``, which aiortc does for any ``av.Packet`` a track yields.

Private aiortc names this relies on (``tests/unit/test_mcu_aiortc_contract.py`` fails loudly if
they change): ``rtcrtpreceiver.decoder_worker`` (its signature), ``RTCRtpSender._send_keyframe``
(called on PLI/FIR from a subscriber), ``RTCRtpReceiver._send_rtcp_pli``, ``RTCRtpTransceiver._codecs``,
``aioice.ice.get_host_addresses``, ``RTCRtpReceiver._handle_rtcp_packet`` (wrapped to keep the
publisher's last RTCP sender report: recordings use it for lip sync) and the receiver's
``__timestamp_mapper._origin`` (frames' timestamps are relative to the first one) and
``__rtx_ssrc`` (which active sources are retransmission streams).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, rtcrtpreceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpSrPacket

log = logging.getLogger("mcu.passthrough")

VIDEO_QUEUE_PACKETS = 90  # ~3 s at 30 fps: beyond this a subscriber is too slow; flush and re-sync
AUDIO_QUEUE_PACKETS = 150  # ~3 s of 20 ms Opus frames
KEYFRAME_REQUEST_INTERVAL_S = 0.5  # while a request is unanswered, no new PLI within this interval
KEYFRAME_REQUEST_MIN_GAP_S = 0.05  # once answered (a keyframe came), the next request may follow this soon

_installed = False
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
    _installed = True


def media_ssrc(receiver: Any) -> int | None:
    """The SSRC carrying the publisher's media: an active source that is not a retransmission
    (RTX) stream. Keyframe requests and sender reports must name this one; Chromium also sends
    on its RTX SSRC (padding probes), which aiortc lists among the active sources."""
    rtx = set(getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", None) or {})
    for source in receiver.getSynchronizationSources():
        if source.source not in rtx:
            return int(source.source)
    return None


class ForwardTrack(MediaStreamTrack):
    """What one subscriber receives of one publisher's track: encoded packets, bounded.

    Video starts at a keyframe; a subscriber whose queue overflows is flushed and waits for the
    next keyframe (asking the publisher for one) instead of growing memory.
    """

    def __init__(self, kind: str, request_keyframe: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._request_keyframe = request_keyframe
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(
            VIDEO_QUEUE_PACKETS if kind == "video" else AUDIO_QUEUE_PACKETS
        )
        self.waiting_for_keyframe = kind == "video"
        self.forwarded = 0
        self.dropped = 0
        self.resyncs = 0

    def push(self, packet: av.Packet) -> None:
        if self.readyState != "live":
            return
        if self.waiting_for_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                self._request_keyframe()
                return
            self.waiting_for_keyframe = False
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self._flush()

    def _flush(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1
        self.resyncs += 1
        if self.kind == "video":
            self.waiting_for_keyframe = True
            self._request_keyframe()

    def keyframe_requested(self) -> None:
        """A PLI/FIR from the subscriber: its decoder lost sync."""
        self._request_keyframe()

    async def recv(self) -> av.Packet:  # type: ignore[override]
        packet = await self._queue.get()
        if packet is None or self.readyState != "live":
            raise MediaStreamError
        self.forwarded += 1
        return packet

    def stop(self) -> None:
        super().stop()
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass


class Publisher:
    """One incoming encoded track, fanned out to every subscriber's ``ForwardTrack``."""

    def __init__(self, track: MediaStreamTrack, receiver: Any, codec: Any) -> None:
        self.track = track
        self.kind = track.kind
        self.receiver = receiver
        self.codec = codec  # the negotiated RTCRtpCodecParameters
        self.subscribers: set[ForwardTrack] = set()
        self._last_keyframe_request = 0.0
        self._keyframe_since_request = True
        self._deferred: asyncio.TimerHandle | None = None
        self.keyframe_requests = 0
        self._task: asyncio.Task[None] | None = None
        self.held = False  # forward nothing (the participant's microphone or camera is off)
        self.source = "camera"  # or "screen": a shared screen (set by the room)

    def hold(self, held: bool) -> None:
        """Stop or resume forwarding; video resumes at a keyframe."""
        if held == self.held:
            return
        self.held = held
        if not held and self.kind == "video":
            self.request_keyframe()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                packet = await self.track.recv()
                if not isinstance(packet, av.Packet):
                    raise TypeError("a decoded frame reached the forwarder: passthrough.install() was not called")
                if packet.is_keyframe:
                    self._keyframe_since_request = True
                if self.held:
                    continue
                for sub in list(self.subscribers):
                    sub.push(packet)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            for sub in list(self.subscribers):
                sub.stop()

    def subscribe(self) -> ForwardTrack:
        fwd = ForwardTrack(self.kind, self.request_keyframe)
        self.subscribers.add(fwd)
        if self.kind == "video":
            self.request_keyframe()
        return fwd

    def unsubscribe(self, fwd: ForwardTrack) -> None:
        self.subscribers.discard(fwd)
        fwd.stop()

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
