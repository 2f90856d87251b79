"""Rooms and participants of one MCU worker: one publish peer connection per participant, one
subscribe peer connection per (subscriber, publisher), participant updates, and the hooks the
benchmark's reference server overrides. Messages arrive already checked against the signalling
contract (``mcu_vm.signalling``); every message sent is built from its models.

Limits: at most ``MAX_SECTIONS`` media sections per publish, one publish per socket,
participant updates coalesced per room (``BROADCAST_COALESCE_S``: the latest state, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from pydantic import BaseModel

from mcu_vm.passthrough import ForwardTrack, Publisher
from mcu_vm.portal import PortalClient
from mcu_vm.recording import RecordingControl, RoomRecording, Uploader
from webmeeting.domain import signalling as contract
from webmeeting.domain.ratelimit import TokenBuckets

log = logging.getLogger("mcu.room")

BROADCAST_COALESCE_S = 0.1  # participant updates go out at most this often per room, latest state only
# media sections one publish may carry, by kind (a screen-share track will add one video section)
MAX_SECTIONS = {"audio": 1, "video": 1}
CHAT_RATE_PER_S, CHAT_BURST = 1.0, 5.0  # chat messages, reactions, change notices: each per participant


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
    hand: bool = False
    social: TokenBuckets = field(default_factory=lambda: TokenBuckets(CHAT_RATE_PER_S, CHAT_BURST, max_keys=3))

    def public(self) -> contract.ParticipantInfo:
        return contract.ParticipantInfo(
            id=self.id,
            name=self.name,
            role=self.role,  # type: ignore[arg-type]
            audio=self.audio,
            video=self.video,
            hand=self.hand,
        )

    async def send(self, message: BaseModel) -> None:
        """One message of the contract to this participant (dropped if the socket is gone)."""
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json(contract.wire(message))


@dataclass
class Room:
    key: str
    participants: dict[str, Participant] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # participant ids seen in this session
    recording: RoomRecording | None = None
    dirty: set[str] = field(default_factory=set)  # participants whose update is yet to be broadcast
    tell: set[str] = field(default_factory=set)  # of those, changed by someone else: they hear of it too
    flush: asyncio.TimerHandle | None = None
    locked: bool = False  # the organizer locked the meeting: nobody new comes in
    removed: set[str] = field(default_factory=set)  # participant ids removed for the rest of the session
    presenters: set[str] = field(default_factory=set)  # made presenters by the organizer (kept across reconnects)
    # the session's chat, in memory only (never stored, never logged): gone with the room
    chat: deque[contract.ChatMessage] = field(default_factory=lambda: deque(maxlen=contract.CHAT_HISTORY))

    def chat_for(self, participant_id: str) -> list[contract.ChatMessage]:
        return [m for m in self.chat if m.to is None or participant_id in (m.to, m.sender)]


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
        self.recordings = RecordingControl(uploader, token_public_key, mcu_id)
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

    # -- membership ------------------------------------------------------------------------------

    async def add(self, room: Room, p: Participant) -> None:
        event = "reconnected" if p.id in room.seen else "joined"
        room.seen.add(p.id)
        room.participants[p.id] = p
        self.portal.event(event, room.key, p.id, name=p.name, role=p.role, ip=p.ip)  # the token's role
        if p.role == "participant" and p.id in room.presenters:
            p.role = "presenter"  # given in this room by the organizer, kept across reconnects
        await p.send(
            contract.Joined(
                participant_id=p.id,
                role=p.role,  # type: ignore[arg-type]
                participants=[o.public() for o in room.participants.values()],
                ice_servers=self.ice_servers,
                recording=room.recording is not None,
                chat=room.chat_for(p.id),
                locked=room.locked,
            )
        )
        for other in list(room.participants.values()):
            if other is not p:
                await other.send(contract.ParticipantJoined(participant=p.public()))
                if other.publishers:
                    await self._offer_subscription(p, other)

    async def remove(self, room: Room, p: Participant, reason: str) -> None:
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
            await other.send(contract.ParticipantLeft(participant_id=p.id))
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
            self.recordings.stop(room)  # nobody left to record
            if room.flush is not None:
                room.flush.cancel()
            del self.rooms[room.key]  # the session ends when the last one leaves

    # -- messages --------------------------------------------------------------------------------

    async def on_message(self, room: Room, p: Participant, message: contract.ClientMessage) -> None:
        """A checked message of a joined participant (``join`` and ``leave`` are the socket's)."""
        if isinstance(message, contract.Publish):
            await self._publish(room, p, message.sdp)
        elif isinstance(message, contract.SubscribeAnswer):
            sub = p.subscriptions.get(message.publisher_id)
            if sub:
                try:
                    await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="answer"))
                except Exception:  # noqa: BLE001 - a refused answer fails that subscription only
                    log.info("a subscription answer was refused")
                    await p.send(contract.error("invalid_sdp"))
        elif isinstance(message, contract.Mute):
            audio = p.audio if message.audio is None else message.audio
            video = p.video if message.video is None else message.video
            self._set_media(room, p, audio, video, by=p)
        elif isinstance(message, contract.Moderate | contract.MuteAll | contract.Lock):
            await self._moderate(room, p, message)
        elif isinstance(message, contract.Chat):
            await self._chat(room, p, message)
        elif isinstance(message, contract.Hand):
            await self._hand(room, p, message)
        elif isinstance(message, contract.React):
            await self._relay(room, p, "react", contract.Reaction(participant_id=p.id, emoji=message.emoji), to_self=True)
        elif isinstance(message, contract.Changed):
            # a page cannot make the others fetch more often than the bucket allows
            notice = contract.ContentChanged(what=message.what, participant_id=p.id)
            await self._relay(room, p, "changed", notice, to_self=False)
        elif isinstance(message, contract.Record):
            outcome = self.recordings.apply(room, p.role, message.grant)
            if outcome in ("forbidden", "unauthenticated"):
                await p.send(contract.error(outcome))  # type: ignore[arg-type]
            elif outcome == "changed":
                for other in room.participants.values():
                    await other.send(contract.RecordingState(active=room.recording is not None))
        else:
            await p.send(contract.error("invalid_request"))

    def _set_media(self, room: Room, p: Participant, audio: bool, video: bool, by: Participant) -> None:
        """What ``p`` sends is forwarded only while it is on: the MCU holds a muted microphone
        or a stopped camera itself (whatever the browser keeps sending)."""
        if (audio, video) == (p.audio, p.video):
            return
        p.audio, p.video = audio, video
        for kind, on in (("audio", audio), ("video", video)):
            pub = p.publishers.get(kind)
            if pub is not None:
                pub.hold(not on)
        self._updated(room, p, by)

    async def _moderate(self, room: Room, p: Participant, message: contract.Moderate | contract.MuteAll | contract.Lock) -> None:
        """The organizer's actions; anyone else is refused, whatever their page sends."""
        if p.role != "organizer":
            await p.send(contract.error("forbidden"))
            return
        if isinstance(message, contract.Lock):
            if room.locked != message.locked:
                room.locked = message.locked
                for other in list(room.participants.values()):
                    await other.send(contract.LockState(locked=room.locked))
            return
        if isinstance(message, contract.MuteAll):
            for other in list(room.participants.values()):
                if other is not p:
                    self._set_media(room, other, False, other.video, by=p)
            return
        target = room.participants.get(message.participant_id)
        if target is None or target is p:
            await p.send(contract.error("invalid_request"))
            return
        if message.action == "mute":
            self._set_media(room, target, False, target.video, by=p)
        elif message.action == "stop_video":
            self._set_media(room, target, target.audio, False, by=p)
        elif message.action in ("promote", "demote"):
            if target.role == "organizer":
                await p.send(contract.error("invalid_request"))
                return
            promote = message.action == "promote"
            (room.presenters.add if promote else room.presenters.discard)(target.id)
            if target.role != ("presenter" if promote else "participant"):
                target.role = "presenter" if promote else "participant"
                self._updated(room, target, by=p)
        else:
            room.removed.add(target.id)  # holds for the session: that participant id cannot come back
            await target.send(contract.Removed())
            await self.remove(room, target, reason="removed")
            if not target.ws.closed:
                await target.ws.close(code=4004)

    def admits(self, room: Room, participant_id: str, role: str) -> contract.ErrorCode | None:
        """Why a (re)joining participant may not come in, or None."""
        if participant_id in room.removed:
            return "removed"
        if room.locked and role != "organizer" and participant_id not in room.seen:
            return "meeting_locked"
        return None

    async def _relay(self, room: Room, p: Participant, bucket: str, message: BaseModel, *, to_self: bool) -> None:
        """``p``'s message to the room, within ``p``'s bucket of that kind."""
        if not p.social.allow(bucket, time.monotonic()):
            await p.send(contract.error("rate_limited"))
            return
        for other in list(room.participants.values()):
            if to_self or other is not p:
                await other.send(message)

    async def _chat(self, room: Room, p: Participant, message: contract.Chat) -> None:
        """Relay to everyone, or to one person (and back to the sender); kept in the room's memory
        for late joiners. Never stored, never logged."""
        if message.to is not None and (message.to == p.id or message.to not in room.participants):
            await p.send(contract.error("invalid_request"))
            return
        if not p.social.allow("chat", time.monotonic()):
            await p.send(contract.error("rate_limited"))
            return
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        sent = contract.ChatMessage(id=secrets.token_hex(8), sender=p.id, name=p.name, text=message.text, to=message.to, at=at)
        room.chat.append(sent)
        for other in list(room.participants.values()):
            if message.to is None or other.id in (message.to, p.id):
                await other.send(sent)

    async def _hand(self, room: Room, p: Participant, message: contract.Hand) -> None:
        """One's own hand up or down; the organizer lowers anyone's (never raises it)."""
        target = room.participants.get(message.participant_id or p.id)
        if target is None:
            await p.send(contract.error("invalid_request"))
            return
        if target is not p and (p.role != "organizer" or message.up):
            await p.send(contract.error("forbidden"))
            return
        if target.hand != message.up:
            target.hand = message.up
            self._updated(room, target, by=p)

    def _updated(self, room: Room, p: Participant, by: Participant) -> None:
        """Broadcast ``p``'s state soon: many changes within ``BROADCAST_COALESCE_S`` go out once.
        ``p`` hears of it too when someone else made the change (the organizer muted them)."""
        room.dirty.add(p.id)
        if by is not p:
            room.tell.add(p.id)
        if room.flush is None:
            room.flush = asyncio.get_running_loop().call_later(BROADCAST_COALESCE_S, self._flush_updates, room)

    def _flush_updates(self, room: Room) -> None:
        room.flush = None
        dirty, room.dirty = room.dirty, set()
        tell, room.tell = room.tell, set()
        for pid in dirty:
            p = room.participants.get(pid)
            if p is None:
                continue
            message = contract.ParticipantUpdated(participant=p.public())
            for other in list(room.participants.values()):
                if other is p and pid not in tell:
                    continue
                sent = asyncio.ensure_future(other.send(message))
                self._sends.add(sent)
                sent.add_done_callback(self._sends.discard)

    async def _publish(self, room: Room, p: Participant, offer_sdp: str) -> None:
        if p.pub_pc is not None:
            await p.send(contract.error("invalid_request"))  # one publish per socket
            return
        sections = media_sections(offer_sdp)
        if not sections or any(n > MAX_SECTIONS.get(kind, 0) for kind, n in sections.items()):
            await p.send(contract.error("too_many_tracks"))  # each section would be a receiver, a task, a decoder thread
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
            await p.send(contract.error("invalid_sdp"))
            return
        for transceiver in pc.getTransceivers():
            codecs = transceiver._codecs  # negotiated, preferred first
            if transceiver.receiver.track is not None and codecs and transceiver.direction in ("recvonly", "sendrecv"):
                pub = self.make_publisher(transceiver.receiver.track, transceiver.receiver, codecs[0])
                pub.hold(not (p.audio if pub.kind == "audio" else p.video))  # a microphone already off stays held
                p.publishers[pub.kind] = pub
                if room.recording is not None:
                    room.recording.add(pub, p.id)
        await p.send(contract.PublishAnswer(sdp=pc.localDescription.sdp))
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
            contract.SubscribeOffer(publisher_id=publisher.id, name=publisher.name, sdp=pc.localDescription.sdp)
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
                await self.remove(room, p, reason="mcu_shutdown")
        for ws in list(self.sockets):
            await ws.close()
