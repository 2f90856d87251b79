"""RTP-level forwarding: a publisher's packets as they arrive (after SRTP unprotect, before
aiortc's jitter buffer), rewritten for each subscriber and sent at once.

Per subscriber stream what must change is rewritten: SSRC, sequence numbers (contiguous over
what this subscriber is sent: a dropped temporal layer leaves no gap that it would NACK),
timestamps (a random offset), the payload type, the header extensions (its own ``mid``, a fresh
``abs-send-time``, the publisher's audio level) and, for VP8, the picture id (contiguous too: a
dropped frame is not a lost one). Nothing is depacketized or repacketized; one pass over the
subscribers per incoming packet.

The parsing here is pure (bytes in, facts out) and read once per packet. The per-subscriber part
is native (``mcu_vm/_fastfwd.c``, built by ``python -m mcu_vm.native``): its ``Sink`` decides
per frame, rewrites, keeps the NACK history and the counters the sender's RTCP reports carry,
protects with the subscriber's SRTP session and sends to the socket of its ICE pair, one call
per incoming packet for all subscribers (``_fastfwd.forward``). What it reads of aiortc and
aioice (private: the DTLS transport's ``_state``, ``_tx_srtp`` and its tx counters, the ICE
transport's ``_connection`` and aioice's ``_nominated`` pairs, pylibsrtp's session pointer
``_srtp`` and libsrtp's ``srtp_protect``, the asyncio transport's ``_closing``) is pinned in
``tests/unit/test_mcu_aiortc_contract.py``. Here: ``bind`` (from the negotiated parameters) and
the routes it asks for (``_resolve``), and the slow path (``_slow``: a paced subscriber, a TURN
relay) through aiortc's own send.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
from dataclasses import dataclass
from typing import Any

import aioice
import aioice.turn
from aiortc.rtcdtlstransport import State
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from mcu_vm._fastfwd import Sink

log = logging.getLogger("mcu.rtp")

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
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


def extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A one-byte-header extension block (RFC 8285) with these (id, value) elements."""
    body = b"".join(bytes([(ident << 4) | (len(value) - 1)]) + value for ident, value in elements)
    body += b"\x00" * (-len(body) % 4)
    return b"\xbe\xde" + struct.pack("!H", len(body) // 4) + body


# -- one subscriber stream -------------------------------------------------------------------


def level_byte(audio_level: tuple[bool, int] | None) -> int:
    """An audio level extension's byte (V bit and level), or -1 for none."""
    if audio_level is None:
        return -1
    return (0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F)


def bind(gate: Sink, sender: Any, parameters: Any) -> None:
    """Bind a subscriber stream's native ``Sink`` to its negotiated aiortc sender: its SSRCs,
    payload types, header extension ids and ``mid``, random starts for its sequence numbers and
    timestamps, where it sends (the DTLS transport, its ICE connection's nominated pairs)."""
    codec = parameters.codecs[0]
    rtx_payload_type = -1
    for other in parameters.codecs:
        if other.mimeType.lower().endswith("/rtx") and other.parameters.get("apt") == codec.payloadType:
            rtx_payload_type = other.payloadType
    ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
    transport = sender.transport
    ice = getattr(getattr(transport, "transport", None), "_connection", None)
    gate.bind(
        ssrc=sender._ssrc,
        rtx_ssrc=sender._rtx_ssrc,
        payload_type=codec.payloadType,
        rtx_payload_type=rtx_payload_type,
        clock_rate=codec.clockRate,
        mid=(parameters.muxId or "").encode()[:16],
        mid_id=ids.get(URI_MID, 0),
        abs_send_time_id=ids.get(URI_ABS_SEND_TIME, 0),
        audio_level_id=ids.get(URI_AUDIO_LEVEL, 0),
        sequence_start=secrets.randbelow(1 << 16),
        timestamp_offset=secrets.randbelow(1 << 32),
        rtx_sequence=secrets.randbelow(1 << 16),
        sender_dict=sender.__dict__,
        transport=transport,
        connected=_CONNECTED,
        nominated=ice._nominated if isinstance(ice, aioice.Connection) else None,
        resolve=_resolve,
        slow=_slow,
    )


_PROTECT = int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))


def _resolve(gate: Sink) -> None:
    """The subscriber's nominated ICE pair (or its SRTP session) is new to the sink: a straight
    route when the pair sends from a plain UDP socket, none when it relays (TURN: the slow path)."""
    transport = gate.transport
    ice = getattr(getattr(transport, "transport", None), "_connection", None)
    pair = ice._nominated.get(1) if isinstance(ice, aioice.Connection) else None
    session = getattr(transport, "_tx_srtp", None)
    if pair is None or session is None:
        return
    udp = pair.protocol.transport  # asyncio's datagram transport, or aioice's TURN one (relayed)
    sock = None if isinstance(udp, aioice.turn.TurnTransport) else udp.get_extra_info("socket")
    if sock is not None and (sock.type != socket.SOCK_DGRAM or not hasattr(udp, "_closing")):
        sock = None
    host, port = pair.remote_addr[:2]
    ctx = int(_srtp_ffi.cast("uintptr_t", session._srtp[0]))
    gate.set_route(pair, udp, sock.fileno() if sock is not None else -1, host, port, session, ctx, _PROTECT)


def _slow(gate: Sink, data: bytes) -> None:
    """What the sink does not send straight (paced, relayed): aiortc's path, in a task."""
    task = asyncio.ensure_future(_send_quietly(gate.transport, data))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _send_quietly(transport: Any, data: bytes) -> None:
    try:
        await transport._send_rtp(data)
    except ConnectionError:
        pass  # not connected (yet, or any more): this subscriber misses it; nobody else does


_pending: set[asyncio.Future[None]] = set()
