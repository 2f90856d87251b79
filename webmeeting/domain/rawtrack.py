"""The raw recording format: one file per recorded track, written by the MCU from the
forwarded (still encoded) frames, read by the converter. Append-only and self-checking, so a
file cut short by a crash or a full disk reads up to its last complete frame, never as garbage.

    file    = MAGIC header record*
    header  = u32 length, JSON {track_id, participant_id, kind, codec, clock_rate, started_at}
    record  = u8 type, body
      type 1 (frame):  u64 arrival (ns, MCU wall clock), u32 RTP timestamp, u8 flags (1 = keyframe),
                       u32 length, bytes, u32 CRC-32 of the bytes
      type 2 (sender report): u64 NTP timestamp, u32 RTP timestamp  (the publisher's clock
                       mapping, from its RTCP SR: lip sync across the publisher's tracks)

All integers big-endian. Times: ``arrival`` is when the MCU received the frame; the converter
places frames by their RTP timestamps mapped through the sender reports (falling back to
arrival) so audio and video of one person stay in sync.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

MAGIC = b"WMRAW1\n"
FRAME, SENDER_REPORT = 1, 2
_FRAME_HEAD = struct.Struct(">QIBI")
_SR = struct.Struct(">QI")
_U32 = struct.Struct(">I")
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Frame:
    arrival_ns: int
    rtp_ts: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class SenderReport:
    ntp: int  # 64-bit NTP timestamp (32.32 fixed point)
    rtp_ts: int

    @property
    def unix_s(self) -> float:
        return (self.ntp >> 32) - NTP_EPOCH_OFFSET + (self.ntp & 0xFFFFFFFF) / 2**32


def write_header(out: IO[bytes], header: dict[str, Any]) -> None:
    body = json.dumps(header, separators=(",", ":")).encode()
    out.write(MAGIC + _U32.pack(len(body)) + body)


def frame_record(frame: Frame) -> bytes:
    flags = 1 if frame.keyframe else 0
    head = _FRAME_HEAD.pack(frame.arrival_ns, frame.rtp_ts & 0xFFFFFFFF, flags, len(frame.data))
    return bytes([FRAME]) + head + frame.data + _U32.pack(zlib.crc32(frame.data))


def sender_report_record(sr: SenderReport) -> bytes:
    return bytes([SENDER_REPORT]) + _SR.pack(sr.ntp, sr.rtp_ts & 0xFFFFFFFF)


class FormatError(ValueError):
    pass


def read(source: IO[bytes]) -> tuple[dict[str, Any], Iterator[Frame | SenderReport]]:
    """The header and the records up to the last complete, intact one."""
    if source.read(len(MAGIC)) != MAGIC:
        raise FormatError("not a raw track file")
    size = source.read(4)
    if len(size) < 4:
        raise FormatError("truncated header")
    body = source.read(_U32.unpack(size)[0])
    try:
        header = json.loads(body)
    except ValueError as exc:
        raise FormatError("bad header") from exc

    def records() -> Iterator[Frame | SenderReport]:
        while True:
            kind = source.read(1)
            if not kind:
                return
            if kind[0] == FRAME:
                head = source.read(_FRAME_HEAD.size)
                if len(head) < _FRAME_HEAD.size:
                    return
                arrival, rtp_ts, flags, length = _FRAME_HEAD.unpack(head)
                if length > MAX_FRAME_BYTES:
                    return
                data = source.read(length)
                crc = source.read(4)
                if len(data) < length or len(crc) < 4 or _U32.unpack(crc)[0] != zlib.crc32(data):
                    return  # cut short (or damaged) here: everything before it stands
                yield Frame(arrival, rtp_ts, bool(flags & 1), data)
            elif kind[0] == SENDER_REPORT:
                body = source.read(_SR.size)
                if len(body) < _SR.size:
                    return
                ntp, rtp_ts = _SR.unpack(body)
                yield SenderReport(ntp, rtp_ts)
            else:
                return

    return header, records()


def unwrap(values: Iterator[int] | list[int], bits: int = 32) -> list[int]:
    """RTP timestamps made monotonic across 32-bit wrap-around (small reorderings kept)."""
    out: list[int] = []
    span, half = 1 << bits, 1 << (bits - 1)
    base = 0
    prev: int | None = None
    for v in values:
        if prev is not None:
            delta = v - prev
            if delta < -half:
                base += span
            elif delta > half:
                base -= span
        out.append(v + base)
        prev = v
    return out


def frame_times(frames: list[Frame], reports: list[SenderReport], clock_rate: int) -> list[float]:
    """Each frame's capture time in the publisher's clock (seconds since the Unix epoch) from the
    first sender report, or, without one, the first frame's arrival plus RTP time."""
    rtp = unwrap([f.rtp_ts for f in frames])
    if reports:
        sr = reports[0]
        ref_rtp = unwrap([frames[0].rtp_ts, sr.rtp_ts])[1] if frames else sr.rtp_ts
        # place the SR's RTP timestamp on the same unwrapped scale as the first frame
        offset = ref_rtp - frames[0].rtp_ts + rtp[0] if frames else 0
        return [sr.unix_s + (r - offset) / clock_rate for r in rtp]
    if not frames:
        return []
    first = frames[0].arrival_ns / 1e9
    return [first + (r - rtp[0]) / clock_rate for r in rtp]
