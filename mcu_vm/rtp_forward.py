"""RTP-level forwarding: a publisher's packets as they arrive (after SRTP unprotect, before
aiortc's jitter buffer), rewritten for each subscriber and sent at once.

Per subscriber stream (``RtpSink``, bound to its aiortc sender once that is negotiated) what
must change is rewritten: SSRC, sequence numbers (contiguous over what this subscriber is sent:
a dropped temporal layer leaves no gap that it would NACK), timestamps (a random offset), the
payload type, the header extensions (its own ``mid``, a fresh ``abs-send-time``, the publisher's
audio level) and, for VP8, the picture id (contiguous too: a dropped frame is not a lost one).
Nothing is depacketized or repacketized; one pass over the subscribers per incoming packet.

The parsing here is pure (bytes in, facts out); ``RtpSink`` protects each packet with the
subscriber's SRTP session and hands it to the socket of its ICE pair at once, in the publisher's
path (private names: the DTLS transport's ``_state``, ``_tx_srtp`` and its tx counters, the ICE
transport's ``_connection`` and aioice's ``_nominated`` pair, pinned in
``tests/unit/test_mcu_aiortc_contract.py``), and keeps what the sender's RTCP needs (counters
and the newest timestamp for its sender reports) and a history that answers the subscriber's
NACKs (with RTX when negotiated).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

import aioice
from aiortc.rtcdtlstransport import State

log = logging.getLogger("mcu.rtp")

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
HISTORY_PACKETS = 512  # per subscriber stream: ~4 s of 1.5 Mbit/s video (NACKs older than 0.5 s are refused anyway)
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 to 1970
_HEADER = struct.Struct("!BBHII")
_CONNECTED = State.CONNECTED


# -- what a packet says (pure) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The parts of a VP8 payload descriptor (RFC 7741) forwarding reads or rewrites."""

    start: bool  # S=1 and partition 0: the first packet of a frame
    keyframe: bool  # a frame start whose VP8 payload header says key frame
    temporal_layer: int | None  # TID, when the descriptor carries it
    picture_id_at: int | None  # where the picture id starts in the payload
    picture_id_bits: int  # 7 or 15 (0: none)


def vp8_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """Parse a VP8 payload descriptor; None when the payload is too short to hold one."""
    n = len(payload)
    if n < 1:
        return None
    first = payload[0]
    start = bool(first & 0x10) and first & 0x07 == 0
    pos, tid, pid_at, pid_bits = 1, None, None, 0
    if first & 0x80:  # X: an extension byte
        if n < 2:
            return None
        flags = payload[1]
        pos = 2
        if flags & 0x80:  # I: a picture id
            if n <= pos:
                return None
            pid_at, pid_bits = pos, (15 if payload[pos] & 0x80 else 7)
            pos += 2 if pid_bits == 15 else 1
        if flags & 0x40:  # L: TL0PICIDX
            pos += 1
        if flags & 0x30:  # T or K: one byte (TID in its top two bits when T)
            if n <= pos:
                return None
            if flags & 0x20:
                tid = payload[pos] >> 6
            pos += 1
    if n < pos:
        return None
    keyframe = start and n > pos and payload[pos] & 0x01 == 0  # the VP8 frame tag's P bit
    return Vp8Descriptor(start, keyframe, tid, pid_at, pid_bits)


def h264_keyframe(payload: bytes) -> bool:
    """Whether an H.264 RTP payload (RFC 6184) carries an IDR slice or an SPS."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A: 16-bit sizes, then NAL units
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal == 28 and len(payload) > 1:  # FU-A: the start fragment names the NAL type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def rewrite_picture_id(payload: bytes, at: int, bits: int, delta: int) -> bytes:
    """The payload with its VP8 picture id moved back by ``delta`` (frames this subscriber was
    not sent), in its own width."""
    if not delta:
        return payload
    out = bytearray(payload)
    if bits == 15:
        value = (((out[at] & 0x7F) << 8) | out[at + 1]) - delta
        out[at] = 0x80 | ((value >> 8) & 0x7F)
        out[at + 1] = value & 0xFF
    else:
        out[at] = (out[at] - delta) & 0x7F
    return bytes(out)


class SequenceMap:
    """A publisher's sequence numbers to one subscriber's: contiguous over what it is sent.

    A packet dropped for this subscriber (a frame of a layer it does not get) takes no number;
    a gap the publisher's own loss left stays a gap (its retransmission may still come, and then
    fills it: the numbers of the drops since are remembered, ``DROPS_REMEMBERED`` of them; a late
    packet from before those cannot be placed and is not sent)."""

    DROPS_REMEMBERED = 256

    def __init__(self, start: int) -> None:
        self.max_in: int | None = None
        self.max_out = (start - 1) & 0xFFFF
        self._dropped: collections.deque[int] = collections.deque()  # input numbers, oldest first
        self._forgotten: int | None = None  # the newest drop no longer remembered

    def forward(self, seq: int) -> int | None:
        if self.max_in is None:
            self.max_in = seq
            self.max_out = (self.max_out + 1) & 0xFFFF
            return self.max_out
        ahead = (seq - self.max_in) & 0xFFFF
        if 0 < ahead < 0x8000:
            self.max_in = seq
            self.max_out = (self.max_out + ahead) & 0xFFFF
            return self.max_out
        behind = (self.max_in - seq) & 0xFFFF
        if self._forgotten is not None and (self._forgotten - seq) & 0xFFFF < 0x8000:
            return None  # from before what is remembered
        skipped = 0
        for dropped in self._dropped:
            since = (dropped - seq) & 0xFFFF
            if since == 0:
                return None  # a packet that was dropped (sent again by the publisher)
            if since <= behind:
                skipped += 1
        return (self.max_out - behind + skipped) & 0xFFFF

    def drop(self, seq: int) -> None:
        if self.max_in is None:
            self.max_in = seq
            self._remember(seq)
            return
        ahead = (seq - self.max_in) & 0xFFFF
        if 0 < ahead < 0x8000:
            self.max_out = (self.max_out + ahead - 1) & 0xFFFF  # gaps before it stay gaps
            self.max_in = seq
            self._remember(seq)

    def _remember(self, seq: int) -> None:
        self._dropped.append(seq)
        if len(self._dropped) > self.DROPS_REMEMBERED:
            self._forgotten = self._dropped.popleft()


def extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A one-byte-header extension block (RFC 8285) with these (id, value) elements."""
    body = b"".join(bytes([(ident << 4) | (len(value) - 1)]) + value for ident, value in elements)
    body += b"\x00" * (-len(body) % 4)
    return b"\xbe\xde" + struct.pack("!H", len(body) // 4) + body


def ntp_now() -> int:
    """The current time as a 64-bit NTP timestamp (what aiortc's sender reports carry)."""
    now = time.time() + NTP_EPOCH_OFFSET
    return int(now * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


# -- one subscriber stream -------------------------------------------------------------------


class RtpSink:
    """Sends one publisher's packets to one subscriber, as its aiortc sender negotiated them."""

    def __init__(self, sender: Any, parameters: Any) -> None:
        codec = parameters.codecs[0]
        self.sender = sender
        self.transport = sender.transport
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self.payload_type: int = codec.payloadType
        self.clock_rate: int = codec.clockRate
        self.rtx_payload_type: int | None = None
        for other in parameters.codecs:
            if other.mimeType.lower().endswith("/rtx") and other.parameters.get("apt") == codec.payloadType:
                self.rtx_payload_type = other.payloadType
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        mid = (parameters.muxId or "").encode()
        self._mid = [(ids[URI_MID], mid)] if URI_MID in ids and mid else []
        self._abs_send_time_id = ids.get(URI_ABS_SEND_TIME)
        self._audio_level_id = ids.get(URI_AUDIO_LEVEL)
        self._extensions = bool(self._mid or self._abs_send_time_id is not None or self._audio_level_id is not None)
        # the extension block with abs-send-time left out (3 bytes, written per packet): head, tail
        self._plain = self._split([(self._abs_send_time_id or 0, b"\0\0\0")])
        self._with_level = self._split([(self._abs_send_time_id or 0, b"\0\0\0"), (self._audio_level_id or 0, b"\0")])
        # the subscriber's ICE connection, where the sink sends without aiortc's coroutine layers
        ice = getattr(getattr(self.transport, "transport", None), "_connection", None)
        self._ice = ice if isinstance(ice, aioice.Connection) else None
        self.sequence = SequenceMap(secrets.randbelow(1 << 16))
        self.timestamp_offset = secrets.randbelow(1 << 32)
        self.rtx_sequence = secrets.randbelow(1 << 16)
        self.history: dict[int, tuple[bytes, int, int]] = {}  # out seq % HISTORY -> (packet, seq, timestamp)
        self.newest_timestamp: int | None = None
        self.packets = 0
        self.octets = 0  # payload bytes sent (the retransmission budget grows with them)

    def build(
        self, seq: int, timestamp: int, marker: int, payload: bytes, audio_level: tuple[bool, int] | None, ntp: int
    ) -> bytes:
        header = _HEADER.pack(0x90 if self._extensions else 0x80, (marker << 7) | self.payload_type, seq, timestamp, self.ssrc)
        if not self._extensions:
            return header + payload
        if self._abs_send_time_id is None:
            elements = list(self._mid)
            if self._audio_level_id is not None and audio_level is not None:
                elements.append((self._audio_level_id, bytes([(0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F)])))
            return header + extension_block(elements) + payload
        sent_at = ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")
        if self._audio_level_id is None or audio_level is None:
            head, tail = self._plain
            return header + head + sent_at + tail + payload
        head, tail = self._with_level
        level = bytes([(0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F)])
        return header + head + sent_at + tail[:1] + level + tail[1:] + payload

    def _split(self, after_mid: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
        """The block for ``mid`` then ``after_mid``, cut where abs-send-time's value goes; an
        audio level's element stays in the tail (its header byte first, its value after)."""
        block = extension_block([*self._mid, *after_mid])
        at = 4 + sum(1 + len(value) for _, value in self._mid) + 1
        tail = block[at + 3 :]
        if len(after_mid) > 1:
            tail = tail[:1] + tail[2:]  # the level's value is written per packet
        return block[:at], tail

    def send(
        self,
        in_seq: int,
        in_timestamp: int,
        marker: int,
        payload: bytes,
        audio_level: tuple[bool, int] | None,
        ntp: int | None = None,
    ) -> bool:
        """Send one packet of a frame this subscriber gets (``ntp``: the send time, shared by a
        pass over the subscribers); False when it could not be placed."""
        seq = self.sequence.forward(in_seq)
        if seq is None:
            return False
        timestamp = (in_timestamp + self.timestamp_offset) & 0xFFFF_FFFF
        ntp = ntp_now() if ntp is None else ntp
        data = self.build(seq, timestamp, marker, payload, audio_level, ntp)
        self.history[seq % HISTORY_PACKETS] = (data, seq, timestamp)
        self.newest_timestamp = timestamp
        self.packets += 1
        self.octets += len(payload)
        state = self.sender.__dict__  # what aiortc's sender reports (RTCP SR) and getStats read
        state["_RTCRtpSender__ntp_timestamp"] = ntp
        state["_RTCRtpSender__rtp_timestamp"] = timestamp
        state["_RTCRtpSender__octet_count"] = self.octets
        state["_RTCRtpSender__packet_count"] = self.packets
        self._out(data)
        return True

    def drop(self, in_seq: int) -> None:
        self.sequence.drop(in_seq)

    def sent(self, seq: int) -> tuple[bytes, int, int] | None:
        """A packet still in the history under its sequence number, or None."""
        entry = self.history.get(seq % HISTORY_PACKETS)
        return entry if entry is not None and entry[1] == seq else None

    def resend(self, seq: int) -> None:
        """Resend a NACKed packet: on the RTX stream when negotiated (RFC 4588), else as it was."""
        entry = self.sent(seq)
        if entry is None:
            return
        data = entry[0]
        if self.rtx_payload_type is not None:
            header_len = 12 + (4 + 4 * struct.unpack_from("!H", data, 14)[0] if data[0] & 0x10 else 0)
            head = bytearray(data[:header_len])
            head[1] = (head[1] & 0x80) | self.rtx_payload_type
            struct.pack_into("!H", head, 2, self.rtx_sequence)
            struct.pack_into("!I", head, 8, self.rtx_ssrc)
            self.rtx_sequence = (self.rtx_sequence + 1) & 0xFFFF
            data = bytes(head) + struct.pack("!H", seq) + data[header_len:]
        self._out(data)

    def _out(self, data: bytes) -> None:
        """Protect and hand to the socket now, in the publisher's path: no coroutine, no task.
        A paced subscriber's packets (they wait for its ``Pacer``) take the transport's general
        path in a task of their own, as do those of a transport this cannot read."""
        transport = self.transport
        pacer = transport.__dict__.get("wm_pacer")
        ice = self._ice
        if (pacer is None or pacer.rate_bps is None) and ice is not None:
            if transport._state is not _CONNECTED:
                return  # not connected (yet, or any more): this subscriber misses it; nobody else does
            pair = ice._nominated.get(1)
            if pair is None:
                return
            protected = transport._tx_srtp.protect(data)
            pair.protocol.transport.sendto(protected, pair.remote_addr)  # UDP, or aioice's TURN transport
            state = transport.__dict__
            state["_RTCDtlsTransport__tx_bytes"] += len(protected)
            state["_RTCDtlsTransport__tx_packets"] += 1
            return
        task = asyncio.ensure_future(self._send_quietly(data))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _send_quietly(self, data: bytes) -> None:
        try:
            await self.transport._send_rtp(data)
        except ConnectionError:
            pass  # not connected (yet, or any more): this subscriber misses it; nobody else does


_pending: set[asyncio.Future[None]] = set()
