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
  {"type": "error", "code", "message"}                  a stable code and a fixed text (never an
                                                        exception's); after a refused join the socket closes

Limits (the MCU's signalling is public): a token bucket per socket (``MESSAGE_RATE_PER_S``,
``MESSAGE_BURST``; over it: "rate_limited", and the socket is closed after ``MAX_DROPPED``
refused messages), at most ``MAX_SECTIONS`` media sections per publish, one publish per socket,
participant updates coalesced per room (``BROADCAST_COALESCE_S``: the latest state, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from mcu_vm.passthrough import ForwardTrack, Publisher
from mcu_vm.portal import PortalClient
from mcu_vm.recording import RoomRecording, Uploader
from webmeeting import tokens
from webmeeting.domain.ratelimit import TokenBuckets

log = logging.getLogger("mcu.room")

CLIENT_IP_HEADER = "X-MCU-Client-IP"

JOIN_TIMEOUT_S = 10  # a socket must present its token this fast
MAX_MESSAGE_BYTES = 64 * 1024  # SDPs are a few KiB
MESSAGE_RATE_PER_S = 10.0  # sustained signalling messages per socket
MESSAGE_BURST = 60.0  # a joiner answers one subscription offer per publisher at once
MAX_DROPPED = 200  # refused (over-rate) messages before the MCU closes the socket
BROADCAST_COALESCE_S = 0.1  # participant updates go out at most this often per room, latest state only
# media sections one publish may carry, by kind (a screen-share track will add one video section)
MAX_SECTIONS = {"audio": 1, "video": 1}
CLOSE_UNAUTHENTICATED, CLOSE_INVALID, CLOSE_FULL, CLOSE_RATE = 4001, 4000, 4003, 4029

# the only texts an error message carries, by code: fixed, never an exception's
ERROR_TEXT = {
    "invalid_request": "the message is not valid here",
    "unauthenticated": "the token is missing, invalid, expired or for another meeting or MCU",
    "meeting_full": "this meeting has reached its participant limit",
    "forbidden": "only the organizer may do this",
    "rate_limited": "too many messages; slow down",
    "invalid_sdp": "the session description was refused",
    "too_many_tracks": "a publish carries at most one audio and one video track",
}


def error(code: str) -> dict[str, str]:
    return {"type": "error", "code": code, "message": ERROR_TEXT[code]}


def media_sections(sdp: str) -> dict[str, int]:
    """Count the m= lines of an SDP by media kind."""
    counts: dict[str, int] = {}
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


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
    bucket: TokenBuckets = field(default_factory=lambda: TokenBuckets(MESSAGE_RATE_PER_S, MESSAGE_BURST, max_keys=1))
    dropped: int = 0

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
    dirty: set[str] = field(default_factory=set)  # participants whose update is yet to be broadcast
    flush: asyncio.TimerHandle | None = None


def loop_time() -> float:
    return time.monotonic()


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
        self._sends: set[asyncio.Future[None]] = set()  # coalesced broadcasts in flight

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
        # set by the supervisor from the connection (or the TLS proxy in front of it); this
        # worker listens on loopback only, for the supervisor
        ip = request.headers.get(CLIENT_IP_HEADER, "")
        participant: Participant | None = None
        room: Room | None = None
        try:
            try:
                first = await ws.receive_json(timeout=JOIN_TIMEOUT_S)
            except (TimeoutError, ValueError, TypeError):
                await self._refuse(ws, "invalid_request")
                return ws
            claims = await self._check_join(ws, first)
            if claims is None:
                return ws
            room = self.rooms.setdefault(claims.meeting_key, Room(claims.meeting_key))
            stale = room.participants.get(claims.participant_id)
            if stale is not None:  # the same person reconnected before we noticed the old socket drop
                await self._remove(room, stale, reason="replaced")
            if len(room.participants) >= claims.max_participants:
                await self._refuse(ws, "meeting_full")
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
                    await participant.send(error("invalid_request"))
                    continue
                if data.get("type") == "leave":
                    break
                if not participant.bucket.allow("", loop_time()):
                    participant.dropped += 1
                    if participant.dropped == 1 or participant.dropped % 50 == 0:
                        await participant.send(error("rate_limited"))
                    if participant.dropped >= MAX_DROPPED:
                        await ws.close(code=CLOSE_RATE)
                        break
                    continue
                try:
                    await self._on_message(room, participant, data)
                except Exception:  # noqa: BLE001 - one bad message never drops the participant or the room
                    log.exception("a %s message failed", str(data.get("type"))[:32])
                    await participant.send(error("invalid_request"))
        finally:
            self.sockets.discard(ws)
            if room is not None and participant is not None and room.participants.get(participant.id) is participant:
                await self._remove(room, participant, reason="left")
            if not ws.closed:
                await ws.close()
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, code: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json(error(code))
        await ws.close(code={"unauthenticated": CLOSE_UNAUTHENTICATED, "meeting_full": CLOSE_FULL}.get(code, CLOSE_INVALID))

    async def _check_join(self, ws: web.WebSocketResponse, first: Any) -> tokens.JoinClaims | None:
        if not isinstance(first, dict) or first.get("type") != "join" or not isinstance(first.get("token"), str):
            await self._refuse(ws, "invalid_request")
            return None
        try:
            claims = tokens.verify(self.token_public_key, first["token"], self.mcu_id, datetime.now(UTC))
        except tokens.TokenError:
            await self._refuse(ws, "unauthenticated")
            return None
        if first.get("meeting_key") != claims.meeting_key:
            await self._refuse(ws, "unauthenticated")
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
        room.dirty.discard(p.id)
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
        if not room.participants and self.rooms.get(room.key) is room:
            self._stop_recording(room)  # nobody left to record
            if room.flush is not None:
                room.flush.cancel()
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
                try:
                    await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                except Exception:  # noqa: BLE001 - a refused answer fails that subscription only
                    log.info("a subscription answer was refused")
                    await p.send(error("invalid_sdp"))
        elif kind == "mute":
            audio, video = data.get("audio", p.audio), data.get("video", p.video)
            if not isinstance(audio, bool) or not isinstance(video, bool):
                await p.send(error("invalid_request"))
                return
            if (audio, video) != (p.audio, p.video):
                p.audio, p.video = audio, video
                self._updated(room, p)
        elif kind == "record":
            await self._record(room, p, data)
        else:
            await p.send(error("invalid_request"))

    def _updated(self, room: Room, p: Participant) -> None:
        """Broadcast ``p``'s state soon: many changes within ``BROADCAST_COALESCE_S`` go out once."""
        room.dirty.add(p.id)
        if room.flush is None:
            room.flush = asyncio.get_running_loop().call_later(BROADCAST_COALESCE_S, self._flush_updates, room)

    def _flush_updates(self, room: Room) -> None:
        room.flush = None
        dirty, room.dirty = room.dirty, set()
        for pid in dirty:
            p = room.participants.get(pid)
            if p is None:
                continue
            message = {"type": "participant_updated", "participant": p.public()}
            for other in list(room.participants.values()):
                if other is not p:
                    sent = asyncio.ensure_future(other.send(message))
                    self._sends.add(sent)
                    sent.add_done_callback(self._sends.discard)

    # -- recording -------------------------------------------------------------------------------

    async def _record(self, room: Room, p: Participant, data: dict[str, Any]) -> None:
        if p.role != "organizer" or self.uploader is None:
            await p.send(error("forbidden"))
            return
        try:
            grant = tokens.verify_grant(
                self.token_public_key, str(data.get("grant", "")), self.mcu_id, room.key, datetime.now(UTC)
            )
        except tokens.TokenError:
            await p.send(error("unauthenticated"))
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
            await p.send(error("invalid_request"))  # one publish per socket
            return
        sections = media_sections(offer_sdp)
        if not sections or any(n > MAX_SECTIONS.get(kind, 0) for kind, n in sections.items()):
            await p.send(error("too_many_tracks"))  # each section would be a receiver, a task, a decoder thread
            return
        pc = RTCPeerConnection(self._config())
        p.pub_pc = pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:  # noqa: BLE001 - a refused offer: that publish fails, the participant stays
            log.info("a publish offer was refused")
            p.pub_pc = None
            await pc.close()
            await p.send(error("invalid_sdp"))
            return
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
