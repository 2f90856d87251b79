"""Benchmark peers in their own process: one publisher, or N subscribers that forward what they
receive instead of decoding it (so the machine's CPU goes to the MCU under test).

    python bench/mcu_peer.py publish   --portal URL --key KEY [--mcu-url U --token T]
    python bench/mcu_peer.py subscribe --portal URL --key KEY --count N --out DIR [--mcu-url U --tokens FILE]
    python bench/mcu_peer.py publish   --janus URL             (the same, through Janus's VideoRoom)
    python bench/mcu_peer.py subscribe --janus URL --count N --out DIR

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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription  # noqa: E402
from aiortc.codecs import vpx  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack  # noqa: E402
from av.video.frame import PictureType  # noqa: E402

from bench.janus import ROOM, JanusPeer  # noqa: E402
from infra.mcu_client import McuClient, Received, consume  # noqa: E402
from mcu_vm import net, passthrough  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 30
BITRATE = 1_500_000  # the encoder's fixed target (aiortc's top): ~1.5 Mbit/s on the wire, whatever the server says


def fixed_bitrate() -> None:
    """The publisher sends the same whatever server it sends to: aiortc's VP8 encoder starts at
    ``BITRATE`` and ignores the REMB it is sent (the MCU asks for more, Janus with ``bitrate = 0``
    for nothing), so every server forwards the same stream."""
    vpx.DEFAULT_BITRATE = BITRATE
    vpx.Vp8Encoder.target_bitrate = property(lambda self: self._Vp8Encoder__target_bitrate, lambda self, _: None)  # type: ignore[method-assign,assignment]


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
    fixed_bitrate()
    stop = await stop_event()
    client = McuClient(args.portal, args.key, "publisher")
    await client.join(mcu_url=args.mcu_url, token=args.token)
    await client.publish([NoiseTrack()], video_codec="video/VP8")
    await stop.wait()
    await client.close()


class JanusClient:
    """A publisher or subscriber in Janus's VideoRoom, counted like ``McuClient``'s ``received``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http: aiohttp.ClientSession | None = None
        self.peer: JanusPeer | None = None
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # explicit: never a public STUN server
        self.received: dict[str, Received] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def _open(self) -> JanusPeer:
        self.http = aiohttp.ClientSession()
        self.peer = JanusPeer(self.http, self.url)
        await self.peer.open()
        return self.peer

    async def publish(self, track: MediaStreamTrack) -> None:
        peer = await self._open()
        await peer.request({"request": "join", "room": ROOM, "ptype": "publisher", "display": "publisher"})
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
        )
        await self.pc.setLocalDescription(await self.pc.createOffer())
        event = await peer.request({"request": "publish"}, {"type": "offer", "sdp": self.pc.localDescription.sdp})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=event["jsep"]["sdp"], type="answer"))

    async def subscribe(self) -> None:
        peer = await self._open()
        listed = await peer.request({"request": "listparticipants", "room": ROOM})
        feeds = [p["id"] for p in listed["plugindata"]["data"]["participants"] if p.get("publisher")]
        if not feeds:
            raise SystemExit("nobody publishes in the Janus room")
        event = await peer.request({"request": "join", "room": ROOM, "ptype": "subscriber", "streams": [{"feed": feeds[0]}]})
        rec = self.received.setdefault(str(feeds[0]), Received())

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(consume(track, rec)))

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=event["jsep"]["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await peer.request({"request": "start"}, {"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        if self.peer is not None:
            await self.peer.close()
        if self.http is not None:
            await self.http.close()


async def video_packets(client: Any) -> int:
    """RTP packets of video received so far (the receivers' own counters)."""
    pcs = [client.pc] if isinstance(client, JanusClient) else list(client.subs.values())
    total = 0
    for pc in pcs:
        for receiver in pc.getReceivers():
            if receiver.track is not None and receiver.track.kind == "video":
                for stat in (await receiver.getStats()).values():
                    if getattr(stat, "type", "") == "inbound-rtp":
                        total += int(stat.packetsReceived)
    return total


async def publish_janus(args: argparse.Namespace) -> None:
    fixed_bitrate()
    stop = await stop_event()
    client = JanusClient(args.janus)
    await client.publish(NoiseTrack())
    await stop.wait()
    await client.close()


async def subscribe(args: argparse.Namespace) -> None:
    passthrough.install()  # count packets, never decode: the CPU is for the server
    stop = await stop_event()
    tokens = json.loads(Path(args.tokens).read_text()) if args.tokens else [None] * args.count
    out = Path(args.out)
    clients: list[Any] = []
    join_s = []
    for i in range(args.count):
        started = time.monotonic()
        c: Any
        if args.janus:
            c = JanusClient(args.janus)
            await c.subscribe()
        else:
            c = McuClient(args.portal, args.key, f"sub{i}")
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
        (
            sum(r.video_bytes for r in c.received.values()),
            sum(r.kinds.get("video", 0) for r in c.received.values()),
            await video_packets(c),
        )
        for c in clients
    ]
    t0 = time.monotonic()
    await stop.wait()
    elapsed = time.monotonic() - t0
    final = []
    for c, (b0, f0, p0) in zip(clients, marks, strict=True):
        b = sum(r.video_bytes for r in c.received.values())
        f = sum(r.kinds.get("video", 0) for r in c.received.values())
        final.append(
            {
                "mbps": (b - b0) * 8 / elapsed / 1e6,
                "frames_per_s": (f - f0) / elapsed,
                "packets_per_s": (await video_packets(c) - p0) / elapsed,
            }
        )
    (out / "final.json").write_text(json.dumps(final))
    for c in clients:
        await c.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["publish", "subscribe"])
    parser.add_argument("--portal")
    parser.add_argument("--key")
    parser.add_argument("--janus", help="Janus's HTTP API (…/janus): publish or subscribe through its VideoRoom")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--out", default=".")
    parser.add_argument("--mcu-url")
    parser.add_argument("--token")
    parser.add_argument("--tokens")
    args = parser.parse_args()
    net.use_addresses(["127.0.0.1"])
    if args.role == "publish":
        asyncio.run(publish_janus(args) if args.janus else publish(args))
    else:
        asyncio.run(subscribe(args))


if __name__ == "__main__":
    main()
