"""Rooms and participants of one MCU worker: signalling over a WebSocket, one publish peer
connection per participant, one subscribe peer connection per (subscriber, publisher).

Signalling messages (JSON), browser -> MCU:
  {"type": "join", "token": "...", "meeting_key": "..."} first message, always; the key must be the token's
  {"type": "publish", "sdp": "<offer>"}                  its audio+video, sendonly
  {"type": "subscribe_answer", "publisher_id", "sdp"}
  {"type": "mute", "audio": bool, "video": bool}
  {"type": "record", "action": "start"|"stop", "grant": "..."}  organizer, with the portal's grant
  {"type": "leave"}
MCU -> browser:
  {"type": "joined", "participant_id", "role", "participants": [...], "ice_servers": [...]}
  {"type": "publish_answer", "sdp"}
  {"type": "subscribe_offer", "publisher_id", "sdp"}
  {"type": "participant_joined" | "participant_updated", "participant": {...}}
  {"type": "participant_left", "participant_id"}
  {"type": "recording", "active": bool}                 to everyone (also in "joined")
  {"type": "error", "code", "message"}                  then the socket closes
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from mcu_vm.passthrough import ForwardTrack, Publisher
from mcu_vm.portal import PortalClient
from mcu_vm.recording import RoomRecording, Uploader
from webmeeting import tokens

log = logging.getLogger("mcu.room")

JOIN_TIMEOUT_S = 10  # a socket must present its token this fast
MAX_MESSAGE_BYTES = 64 * 1024  # SDPs are a few KiB


@dataclass
class Subscription:
    pc: RTCPeerConnection
    tracks: list[tuple[Publisher, ForwardTrack]]


@dataclass
class Participant:
    id: str
    name: str
    role: str
    ip: str
    ws: web.WebSocketResponse
    audio: bool = True
    video: bool = True
    pub_pc: RTCPeerConnection | None = None
    publishers: dict[str, Publisher] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # by publisher id

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "audio": self.audio, "video": self.video}

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json(message)


@dataclass
class Room:
    key: str
    participants: dict[str, Participant] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # participant ids seen in this session
    recording: RoomRecording | None = None


def codec_preferences(kind: str, negotiated: Any) -> list[Any]:
    """The capabilities matching a publisher's negotiated codec, so the subscriber's peer
    connection carries exactly the packets the publisher sends."""
    out = []
    for cap in RTCRtpSender.getCapabilities(kind).codecs:
        if cap.mimeType.lower() != negotiated.mimeType.lower():
            continue
        if cap.name.lower() == "h264":
            want = str(negotiated.parameters.get("profile-level-id") or "").lower()
            have = str(cap.parameters.get("profile-level-id") or "").lower()
            if want[:2] + want[4:] != have[:2] + have[4:]:  # profile and level; ignore constraint flags
                continue
        out.append(cap)
    return out


class RoomRegistry:
    """All rooms of this worker process; owns every peer connection it creates."""

    def __init__(
        self,
        mcu_id: str,
        token_public_key: str,
        ice_servers: list[dict[str, Any]],
        portal: PortalClient,
        uploader: Uploader | None = None,
    ) -> None:
        self.mcu_id = mcu_id
        self.uploader = uploader
        self.token_public_key = token_public_key
        self.ice_servers = ice_servers
        self.portal = portal
        self.rooms: dict[str, Room] = {}
        self.sockets: set[web.WebSocketResponse] = set()

    # -- accounting ------------------------------------------------------------------------------

    def load(self) -> dict[str, int]:
        participants = sum(len(r.participants) for r in self.rooms.values())
        streams = sum(
            len(s.tracks) for r in self.rooms.values() for p in r.participants.values() for s in p.subscriptions.values()
        )
        return {"rooms": len(self.rooms), "participants": participants, "forwarded_streams": streams}

    def live(self) -> dict[str, list[str]]:
        """Who is connected, per meeting: the portal reconciles lost "left" events against it."""
        return {key: sorted(room.participants) for key, room in self.rooms.items()}

    def _config(self) -> RTCConfiguration:
        servers = [RTCIceServer(**s) for s in self.ice_servers]  # type: ignore[arg-type]
        return RTCConfiguration(iceServers=servers)  # explicit, possibly empty: never a default

    # -- the socket ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=10, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        self.sockets.add(ws)
        ip = request.headers.get("X-Forwarded-For", request.remote or "").split(",")[-1].strip()
        participant: Participant | None = None
        room: Room | None = None
        try:
            try:
                first = await ws.receive_json(timeout=JOIN_TIMEOUT_S)
            except (TimeoutError, ValueError, TypeError):
                await self._refuse(ws, "invalid_request", "the first message must be a join with a token")
                return ws
            claims = await self._check_join(ws, first)
            if claims is None:
                return ws
            room = self.rooms.setdefault(claims.meeting_key, Room(claims.meeting_key))
            stale = room.participants.get(claims.participant_id)
            if stale is not None:  # the same person reconnected before we noticed the old socket drop
                await self._remove(room, stale, reason="replaced")
            if len(room.participants) >= claims.max_participants:
                await self._refuse(ws, "meeting_full", f"this meeting allows {claims.max_participants} participants")
                return ws
            participant = Participant(claims.participant_id, claims.display_name, claims.role, ip, ws)
            await self._add(room, participant)
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                try:
                    data = msg.json()
                    if not isinstance(data, dict):
                        raise ValueError("not an object")
                except ValueError:
                    await participant.send({"type": "error", "code": "invalid_request", "message": "messages are JSON objects"})
                    continue
                if data.get("type") == "leave":
                    break
                await self._on_message(room, participant, data)
        finally:
            self.sockets.discard(ws)
            if room is not None and participant is not None and room.participants.get(participant.id) is participant:
                await self._remove(room, participant, reason="left")
            if not ws.closed:
                await ws.close()
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json({"type": "error", "code": code, "message": message})
        await ws.close(code=4000 + (1 if code == "unauthenticated" else 3 if code == "meeting_full" else 0))

    async def _check_join(self, ws: web.WebSocketResponse, first: Any) -> tokens.JoinClaims | None:
        if not isinstance(first, dict) or first.get("type") != "join" or not isinstance(first.get("token"), str):
            await self._refuse(ws, "invalid_request", "the first message must be a join with a token")
            return None
        try:
            claims = tokens.verify(self.token_public_key, first["token"], self.mcu_id, datetime.now(UTC))
        except tokens.TokenError as exc:
            await self._refuse(ws, "unauthenticated", str(exc))
            return None
        if first.get("meeting_key") != claims.meeting_key:
            await self._refuse(ws, "unauthenticated", "this token is for another meeting")
            return None
        return claims

    # -- membership ------------------------------------------------------------------------------

    async def _add(self, room: Room, p: Participant) -> None:
        event = "reconnected" if p.id in room.seen else "joined"
        room.seen.add(p.id)
        room.participants[p.id] = p
        self.portal.event(event, room.key, p.id, name=p.name, role=p.role, ip=p.ip)
        await p.send(
            {
                "type": "joined",
                "participant_id": p.id,
                "role": p.role,
                "participants": [o.public() for o in room.participants.values()],
                "ice_servers": self.ice_servers,
                "recording": room.recording is not None,
            }
        )
        for other in list(room.participants.values()):
            if other is not p:
                await other.send({"type": "participant_joined", "participant": p.public()})
                if other.publishers:
                    await self._offer_subscription(p, other)

    async def _remove(self, room: Room, p: Participant, reason: str) -> None:
        room.participants.pop(p.id, None)
        closing: list[RTCPeerConnection] = []
        ended = list(p.subscriptions.values())
        p.subscriptions.clear()
        for other in room.participants.values():
            if p.id in other.subscriptions:
                ended.append(other.subscriptions.pop(p.id))
        for sub in ended:
            for pub, fwd in sub.tracks:
                pub.unsubscribe(fwd)
            closing.append(sub.pc)
        for other in room.participants.values():
            await other.send({"type": "participant_left", "participant_id": p.id})
        for pub in p.publishers.values():
            await pub.stop()
        p.publishers.clear()
        if p.pub_pc:
            closing.append(p.pub_pc)
        await asyncio.gather(*(pc.close() for pc in closing), return_exceptions=True)
        self.portal.event("left", room.key, p.id, reason=reason)
        if reason == "replaced" and not p.ws.closed:
            await p.ws.close()
        if not room.participants:
            self._stop_recording(room)  # nobody left to record
            del self.rooms[room.key]  # the session ends when the last one leaves

    # -- messages --------------------------------------------------------------------------------

    async def _on_message(self, room: Room, p: Participant, data: dict[str, Any]) -> None:
        kind = data.get("type")
        sdp = data.get("sdp")
        if kind == "publish" and isinstance(sdp, str):
            await self._publish(room, p, sdp)
        elif kind == "subscribe_answer" and isinstance(sdp, str):
            sub = p.subscriptions.get(str(data.get("publisher_id")))
            if sub:
                await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        elif kind == "mute":
            p.audio, p.video = bool(data.get("audio", p.audio)), bool(data.get("video", p.video))
            for other in room.participants.values():
                if other is not p:
                    await other.send({"type": "participant_updated", "participant": p.public()})
        elif kind == "record":
            await self._record(room, p, data)
        else:
            await p.send({"type": "error", "code": "invalid_request", "message": f"unknown message {kind!r}"})

    # -- recording -------------------------------------------------------------------------------

    async def _record(self, room: Room, p: Participant, data: dict[str, Any]) -> None:
        if p.role != "organizer" or self.uploader is None:
            await p.send({"type": "error", "code": "forbidden", "message": "only the organizer records"})
            return
        try:
            grant = tokens.verify_grant(
                self.token_public_key, str(data.get("grant", "")), self.mcu_id, room.key, datetime.now(UTC)
            )
        except tokens.TokenError as exc:
            await p.send({"type": "error", "code": "unauthenticated", "message": str(exc)})
            return
        if grant.action == "start" and room.recording is None:
            room.recording = RoomRecording(grant.recording_id, room.key, self.uploader.root / grant.recording_id)
            for other in room.participants.values():
                for pub in other.publishers.values():
                    room.recording.add(pub, other.id)
            log.info("recording %s started", grant.recording_id)
        elif grant.action == "stop" and room.recording is not None and room.recording.recording_id == grant.recording_id:
            self._stop_recording(room)
        else:
            return  # a repeated start or stop: nothing changes
        for other in room.participants.values():
            await other.send({"type": "recording", "active": room.recording is not None})

    def _stop_recording(self, room: Room) -> None:
        if room.recording is None:
            return
        room.recording.stop()
        log.info("recording %s stopped", room.recording.recording_id)
        room.recording = None
        if self.uploader:
            self.uploader.kick()

    async def _publish(self, room: Room, p: Participant, offer_sdp: str) -> None:
        if p.pub_pc is not None:
            await p.send({"type": "error", "code": "invalid_request", "message": "already publishing"})
            return
        pc = RTCPeerConnection(self._config())
        p.pub_pc = pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        for transceiver in pc.getTransceivers():
            codecs = transceiver._codecs  # negotiated, preferred first
            if transceiver.receiver.track is not None and codecs and transceiver.direction in ("recvonly", "sendrecv"):
                pub = self.make_publisher(transceiver.receiver.track, transceiver.receiver, codecs[0])
                p.publishers[pub.kind] = pub
                if room.recording is not None:
                    room.recording.add(pub, p.id)
        await p.send({"type": "publish_answer", "sdp": pc.localDescription.sdp})
        for other in list(room.participants.values()):
            if other is not p:
                await self._offer_subscription(other, p)

    async def _offer_subscription(self, subscriber: Participant, publisher: Participant) -> None:
        if publisher.id in subscriber.subscriptions or not publisher.publishers:
            return
        pc = RTCPeerConnection(self._config())
        tracks = []
        for kind in ("audio", "video"):
            pub = publisher.publishers.get(kind)
            if pub is None:
                continue
            tracks.append((pub, self.attach(pc, pub)))
        subscriber.subscriptions[publisher.id] = Subscription(pc, tracks)
        await pc.setLocalDescription(await pc.createOffer())
        await subscriber.send(
            {"type": "subscribe_offer", "publisher_id": publisher.id, "name": publisher.name, "sdp": pc.localDescription.sdp}
        )

    # -- forwarding (the benchmark's reference server overrides these two) -----------------------

    def make_publisher(self, track: Any, receiver: Any, codec: Any) -> Publisher:
        """Fan out one incoming track, forwarded encoded."""
        pub = Publisher(track, receiver, codec)
        pub.start()
        return pub

    def attach(self, pc: RTCPeerConnection, pub: Publisher) -> ForwardTrack:
        """Add a subscriber's copy of ``pub`` to ``pc``, pinned to the publisher's codec."""
        fwd = pub.subscribe()
        transceiver = pc.addTransceiver(fwd, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences(pub.kind, pub.codec))
        transceiver.sender._send_keyframe = fwd.keyframe_requested  # type: ignore[method-assign]  # PLI/FIR -> publisher
        return fwd

    async def close(self) -> None:
        """Shut down: every participant leaves, every peer connection closes."""
        for room in list(self.rooms.values()):
            for p in list(room.participants.values()):
                await self._remove(room, p, reason="mcu_shutdown")
        for ws in list(self.sockets):
            await ws.close()
