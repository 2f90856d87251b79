"""A programmatic meeting participant (aiortc), for tests and benchmarks: joins through the
portal, publishes tracks, and subscribes to everyone else like the meeting page does."""

from __future__ import annotations

import array
import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from webmeeting.domain import signalling as contract


async def consume(track: MediaStreamTrack, rec: Received) -> None:
    """Count what arrives on ``track`` into ``rec``: decoded frames (their sizes), or forwarded
    packets (their bytes) where the process forwards instead of decoding."""
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            item = await track.recv()
            rec.kinds[track.kind] = rec.kinds.get(track.kind, 0) + 1
            if track.kind == "video":
                if rec.first_video_at is None:
                    rec.first_video_at = time.monotonic()
                width = getattr(item, "width", None)
                if width:
                    rec.sizes.add((width, int(getattr(item, "height", 0))))
                else:
                    rec.video_bytes += int(getattr(item, "size", 0))  # a forwarded packet, not a decoded frame


@dataclass
class Received:
    """What arrived from one publisher."""

    kinds: dict[str, int] = field(default_factory=dict)  # frames (or packets) per kind
    video_bytes: int = 0  # when the client forwards instead of decoding (packets)
    first_video_at: float | None = None
    codecs: set[str] = field(default_factory=set)  # the one each stream carries
    negotiated: set[str] = field(default_factory=set)  # every codec agreed, RTX included
    sizes: set[tuple[int, int]] = field(default_factory=set)


class McuClient:
    def __init__(self, portal: str, meeting_key: str, name: str, *, subscribe: bool = True) -> None:
        """``subscribe``: answer the MCU's offers of the others' media (False: a publisher only,
        whose offers stay unanswered: a large meeting's clients in one test process)."""
        self.portal = portal
        self.subscribe = subscribe
        self.messages: list[dict[str, Any]] = []  # everything else the MCU said, in order
        self.meeting_key = meeting_key
        self.name = name
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pub_pc: RTCPeerConnection | None = None
        self.subs: dict[str, RTCPeerConnection] = {}
        self.received: dict[str, Received] = {}
        self.joined: dict[str, Any] = {}
        self.connected_at = 0.0
        self._answer: asyncio.Future[str] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.on_subscribed: Callable[[str], None] | None = None
        self.token = ""
        self.recording_active = False

    async def join(
        self, *, mcu_url: str | None = None, token: str | None = None, organizer_secret: str | None = None
    ) -> dict[str, Any]:
        """Join through the portal, or straight at ``mcu_url`` with a ready ``token``."""
        self.session = aiohttp.ClientSession(trust_env=False)
        self.connected_at = time.monotonic()
        if token is None:
            body: dict[str, Any] = {"meeting_key": self.meeting_key, "display_name": self.name}
            if organizer_secret:
                body["organizer_secret"] = organizer_secret
            async with self.session.post(f"{self.portal}/api/meet/v1/join", json=body) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"join refused: {resp.status} {body}")
            mcu_url, token = body["mcu_url"], body["token"]
        self.token = token
        assert mcu_url
        self.ws = await self.session.ws_connect(mcu_url, max_msg_size=1 << 20)
        await self.ws.send_json(contract.wire(contract.Join(type="join", token=token, meeting_key=self.meeting_key)))
        self.joined = await self.ws.receive_json(timeout=10)
        if self.joined.get("type") != "joined":
            raise RuntimeError(f"MCU refused: {self.joined}")
        self._tasks.append(asyncio.ensure_future(self._loop()))
        return self.joined

    def _config(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=[])  # explicit: nothing beyond loopback

    async def publish(self, tracks: list[MediaStreamTrack], video_codec: str | list[str] | None = None) -> None:
        """Publish ``tracks``; ``video_codec``: the codec (or codecs, preferred first) to offer."""
        assert self.ws
        pc = RTCPeerConnection(self._config())
        self.pub_pc = pc
        for track in tracks:
            t = pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video" and video_codec:
                wanted = [video_codec] if isinstance(video_codec, str) else video_codec
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences([c for name in wanted for c in caps if c.mimeType.lower() == name.lower()])
        await pc.setLocalDescription(await pc.createOffer())
        self._answer = asyncio.get_running_loop().create_future()
        await self.ws.send_json(contract.wire(contract.Publish(type="publish", sdp=pc.localDescription.sdp)))
        answer = await asyncio.wait_for(self._answer, 10)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _loop(self) -> None:
        assert self.ws
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            if data["type"] == "publish_answer" and self._answer and not self._answer.done():
                self._answer.set_result(data["sdp"])
            elif data["type"] == "subscribe_offer":
                if self.subscribe:
                    await self._subscribe(data)
            elif data["type"] == "recording":
                self.recording_active = bool(data["active"])
            else:
                self.messages.append(data)
                del self.messages[:-1000]

    async def _subscribe(self, data: dict[str, Any]) -> None:
        assert self.ws
        pub_id = data["publisher_id"]
        pc = RTCPeerConnection(self._config())
        self.subs[pub_id] = pc
        rec = self.received.setdefault(pub_id, Received())

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._consume(track, rec)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        for t in pc.getTransceivers():
            if t._codecs:
                rec.codecs.add(t._codecs[0].mimeType)
                rec.negotiated.update(c.mimeType for c in t._codecs)
        answer = contract.SubscribeAnswer(type="subscribe_answer", publisher_id=pub_id, sdp=pc.localDescription.sdp)
        await self.ws.send_json(contract.wire(answer))
        if self.on_subscribed:
            self.on_subscribed(pub_id)

    async def _consume(self, track: MediaStreamTrack, rec: Received) -> None:
        await consume(track, rec)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send_json(contract.wire(contract.Leave(type="leave")))
            await self.ws.close()
        for pc in [self.pub_pc, *self.subs.values()]:
            if pc is not None:
                await pc.close()
        if self.session:
            await self.session.close()


async def record(client: McuClient, action: Literal["start", "stop"]) -> dict[str, Any]:
    """The organizer page's recording button: ask the portal, hand its grant to the MCU."""
    assert client.session and client.ws
    async with client.session.post(
        f"{client.portal}/api/meet/v1/recording", json={"action": action}, headers={"Authorization": f"Bearer {client.token}"}
    ) as resp:
        body: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"recording {action} refused: {resp.status} {body}")
    await client.ws.send_json(contract.wire(contract.Record(type="record", action=action, grant=body["grant"])))
    return body


class FlatVideoTrack(VideoStreamTrack):
    """640x360 (or ``size``) frames of one brightness (aiortc's own test track is black)."""

    def __init__(self, luma: int = 140, size: tuple[int, int] = (640, 360)) -> None:
        super().__init__()
        import av

        self.frame = av.VideoFrame(size[0], size[1], "yuv420p")
        for plane, value in zip(self.frame.planes, (luma, 128, 128), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)

    async def recv(self) -> Any:
        pts, time_base = await self.next_timestamp()
        frame = self.frame
        frame.pts, frame.time_base = pts, time_base
        return frame


class VoiceTrack(AudioStreamTrack):
    """aiortc's silent audio, or a loud square wave while ``speaking`` (an audio level of about
    -12 dBov in its packets' ssrc-audio-level extension)."""

    def __init__(self) -> None:
        super().__init__()
        self.speaking = False

    async def recv(self) -> Any:
        frame = await super().recv()
        if self.speaking and isinstance(frame, av.AudioFrame):
            plane = frame.planes[0]
            period = 40  # samples: 200 Hz at 8 kHz
            wave = array.array("h", (8000 if (i // (period // 2)) % 2 else -8000 for i in range(plane.buffer_size // 2)))
            plane.update(wave.tobytes())
        return frame
