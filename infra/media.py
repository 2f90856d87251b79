"""Synthetic recordings for converter tests and the conversion benchmark: raw track files as
the MCU writes them, with really encoded VP8/H.264 and Opus, known content and known timing.

Each person has a colour and a tone; at ``flash_at`` seconds their picture turns white and their
tone gets loud for 200 ms at the same capture instant, so lip sync can be measured in the MP4.
Each person's publisher clock is off by ``clock_skew_s`` (as browsers' clocks are), and their
media arrives ``network_delay_s`` late."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from webmeeting.domain import rawtrack

W, H, FPS, RATE, OPUS_FRAME = 640, 360, 30, 48_000, 960


@dataclass(frozen=True)
class Person:
    participant_id: str
    luma: int  # picture brightness
    u: int
    v: int
    tone_hz: float
    clock_skew_s: float = 0.0
    network_delay_s: float = 0.02
    joins_at: float = 0.0
    leaves_at: float | None = None
    flash_at: float | None = None  # seconds from the recording's start
    video_codec: str = "vp8"
    screen: bool = False  # a shared screen of ``participant_id``: one video track, no audio


def _ntp(unix_s: float) -> int:
    secs = unix_s + rawtrack.NTP_EPOCH_OFFSET
    return (int(secs) << 32) | int((secs - int(secs)) * 2**32)


def _video_packets(p: Person, seconds: float) -> list[tuple[float, bytes, bool]]:
    codec = av.CodecContext.create("libvpx" if p.video_codec == "vp8" else "libx264", "w")
    codec.width, codec.height, codec.pix_fmt = W, H, "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.bit_rate = 1_000_000
    codec.gop_size = 60
    if p.video_codec == "h264":
        codec.options = {"preset": "ultrafast", "tune": "zerolatency"}
    else:
        codec.options = {"deadline": "realtime", "cpu-used": "8"}
    rng = np.random.default_rng(abs(hash(p.participant_id)) % 2**32)
    out = []
    n = int(seconds * FPS)
    for i in range(n):
        t = i / FPS
        flash = p.flash_at is not None and p.flash_at <= t + p.joins_at < p.flash_at + 0.2  # recording time
        y = np.full((H, W), 235 if flash else p.luma, np.uint8)
        x0 = (i * 6) % (W - 80)
        y[140:220, x0 : x0 + 80] = 60  # a moving square
        y += rng.integers(0, 3, (H, W), dtype=np.uint8)  # a little sensor noise
        u = np.full((H // 2, W // 2), 128 if flash else p.u, np.uint8)
        v = np.full((H // 2, W // 2), 128 if flash else p.v, np.uint8)
        frame = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, W), v.reshape(-1, W)]), format="yuv420p")
        frame.pts = i
        for pkt in codec.encode(frame):
            out.append((float(pkt.pts or 0) / FPS, bytes(pkt), bool(pkt.is_keyframe)))
    for pkt in codec.encode(None):
        out.append((float(pkt.pts or 0) / FPS, bytes(pkt), bool(pkt.is_keyframe)))
    return out


def _audio_packets(p: Person, seconds: float) -> list[tuple[float, bytes]]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = RATE, "mono", "s16"
    codec.bit_rate = 32_000
    out = []
    n = int(seconds * RATE / OPUS_FRAME)
    for i in range(n):
        t = (i * OPUS_FRAME + np.arange(OPUS_FRAME)) / RATE
        rt = t + p.joins_at  # recording time
        loud = p.flash_at is not None and (p.flash_at <= rt) & (rt < p.flash_at + 0.2)
        amp = np.where(loud, 20000, 1500)
        pcm = (amp * np.sin(2 * math.pi * p.tone_hz * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, i * OPUS_FRAME
        for pkt in codec.encode(frame):
            out.append((float(pkt.pts or 0) / RATE, bytes(pkt)))
    return out


def write_recording(folder: Path, people: list[Person], seconds: float, started: datetime | None = None) -> dict[str, Any]:
    """Raw tracks and a manifest in ``folder`` as the MCU leaves them; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    started = started or datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    t0 = started.timestamp()
    tracks: list[dict[str, Any]] = []
    for n, p in enumerate(people):
        end = p.leaves_at if p.leaves_at is not None else seconds
        media = end - p.joins_at
        for kind in ("video",) if p.screen else ("video", "audio"):
            source = "screen" if p.screen else "camera"
            track_id = f"t{len(tracks):03d}-{kind}"
            clock = 90_000 if kind == "video" else RATE
            rtp_base = 1_000 + 7919 * (n + 1) * (2 if kind == "video" else 1)
            codec = p.video_codec if kind == "video" else "opus"
            path = folder / f"{track_id}.wmr"
            header = {
                "track_id": track_id,
                "participant_id": p.participant_id,
                "kind": kind,
                "source": source,
                "codec": codec,
                "clock_rate": clock,
            }
            with open(path, "wb") as fh:
                rawtrack.write_header(fh, header)
                # the publisher's clock: capture instant 0 of this person is (t0 + joins_at + skew) there
                capture0 = t0 + p.joins_at
                fh.write(rawtrack.sender_report_record(rawtrack.SenderReport(_ntp(capture0 + p.clock_skew_s), rtp_base)))
                if kind == "video":
                    packets = [(t, data, key) for t, data, key in _video_packets(p, media)]
                else:
                    packets = [(t, data, False) for t, data in _audio_packets(p, media)]
                count = 0
                for t, data, key in packets:
                    arrival = capture0 + t + p.network_delay_s
                    rtp = rtp_base + round(t * clock)
                    fh.write(rawtrack.frame_record(rawtrack.Frame(int(arrival * 1e9), rtp & 0xFFFFFFFF, key, data)))
                    count += 1
            tracks.append(
                {
                    **header,
                    "file": path.name,
                    "frames": count,
                    "bytes": path.stat().st_size,
                }
            )
    manifest = {
        "recording_id": "0" * 32,
        "meeting_key": "k" * 22,
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "stopped_at": (started + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
        "tracks": tracks,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest
