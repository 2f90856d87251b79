"""Benchmark peers in their own process: one publisher, or N subscribers that forward what they
receive instead of decoding it (so the machine's CPU goes to the MCU under test).

    python bench/mcu_peer.py publish   --portal URL --key KEY [--mcu-url U --token T]
    python bench/mcu_peer.py subscribe --portal URL --key KEY --count N --out DIR [--mcu-url U --tokens FILE]

Subscribers join one after another, each waiting for its first video frame, write
DIR/ready.json (join-to-first-frame per subscriber), and on SIGTERM DIR/final.json (bytes and
packets received per subscriber).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc.codecs import vpx  # noqa: E402
from aiortc.mediastreams import VideoStreamTrack  # noqa: E402
from av.video.frame import PictureType  # noqa: E402

from infra.mcu_client import McuClient  # noqa: E402
from mcu_vm import net, passthrough  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 30
TARGET_BITRATE = 850_000  # encoder target; lands at ~1.2 Mbps on the wire with RTP overhead and overshoot
LOOP_FRAMES = 48


class NoiseTrack(VideoStreamTrack):
    """640x360 at 30 fps of camera-like content, so the encoder really spends its bitrate: a
    textured scene panning slowly, a bright shape moving across it, and sensor noise over the
    whole picture (a camera's picture is never clean; a clean synthetic one is cheap to encode)."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(7)
        yy, xx = np.mgrid[0:HEIGHT, 0 : WIDTH + 2 * LOOP_FRAMES].astype(np.float32)
        scene = 110 + 40 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 30 * np.sin((xx + yy) / 37.0)
        self.frames = []
        for i in range(LOOP_FRAMES):
            luma = scene[:, 2 * i : 2 * i + WIDTH].copy()  # pan 2 px per frame
            cx, cy = 120 + (i * 8) % 400, 180
            luma[(xx[:, :WIDTH] - cx) ** 2 + (yy[:, :WIDTH] - cy) ** 2 < 60**2] = 200
            luma += rng.normal(0, 4, luma.shape)  # sensor noise
            y = np.clip(luma, 0, 255).astype(np.uint8)
            u = np.full((HEIGHT // 2, WIDTH // 2), 118, np.uint8)
            v = np.full((HEIGHT // 2, WIDTH // 2), 138, np.uint8)
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, WIDTH), v.reshape(-1, WIDTH)]), format="yuv420p")
            self.frames.append(frame)
        self.i = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self.frames[self.i % LOOP_FRAMES]
        self.i += 1
        frame.pts, frame.time_base = pts, time_base
        # aiortc asks for a keyframe by marking the frame object itself (pict_type I) and never
        # clears it: a looped frame once marked would be a keyframe on every loop after
        frame.pict_type = PictureType.NONE
        return frame


async def stop_event() -> asyncio.Event:
    ev = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ev.set)
    return ev


async def publish(args: argparse.Namespace) -> None:
    vpx.DEFAULT_BITRATE = TARGET_BITRATE  # aiortc starts at 500 kbps; no REMB comes back through the MCU
    stop = await stop_event()
    client = McuClient(args.portal, args.key, "publisher")
    await client.join(mcu_url=args.mcu_url, token=args.token)
    await client.publish([NoiseTrack()], video_codec="video/VP8")
    await stop.wait()
    await client.close()


async def subscribe(args: argparse.Namespace) -> None:
    passthrough.install()  # count packets, never decode: the CPU is for the MCU
    stop = await stop_event()
    tokens = json.loads(Path(args.tokens).read_text()) if args.tokens else [None] * args.count
    out = Path(args.out)
    clients, join_s = [], []
    for i in range(args.count):
        c = McuClient(args.portal, args.key, f"sub{i}")
        started = time.monotonic()
        await c.join(mcu_url=args.mcu_url, token=tokens[i])
        while not any(r.first_video_at for r in c.received.values()):
            if time.monotonic() - started > 30:
                raise SystemExit(f"subscriber {i}: no video after 30 s")
            await asyncio.sleep(0.005)
        first = min(r.first_video_at for r in c.received.values() if r.first_video_at)
        join_s.append(first - started)
        clients.append(c)
    (out / "ready.json").write_text(json.dumps({"join_to_first_frame_s": join_s}))
    marks = [
        (sum(r.video_bytes for r in c.received.values()), sum(r.kinds.get("video", 0) for r in c.received.values()))
        for c in clients
    ]
    t0 = time.monotonic()
    await stop.wait()
    elapsed = time.monotonic() - t0
    final = []
    for c, (b0, p0) in zip(clients, marks, strict=True):
        b = sum(r.video_bytes for r in c.received.values())
        p = sum(r.kinds.get("video", 0) for r in c.received.values())
        final.append({"mbps": (b - b0) * 8 / elapsed / 1e6, "frames_per_s": (p - p0) / elapsed})
    (out / "final.json").write_text(json.dumps(final))
    for c in clients:
        await c.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["publish", "subscribe"])
    parser.add_argument("--portal", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--out", default=".")
    parser.add_argument("--mcu-url")
    parser.add_argument("--token")
    parser.add_argument("--tokens")
    args = parser.parse_args()
    net.use_addresses(["127.0.0.1"])
    asyncio.run(publish(args) if args.role == "publish" else subscribe(args))


if __name__ == "__main__":
    main()
