"""Rooms and participants of one MCU worker: one publish peer connection per participant and
source (camera; a shared screen), one subscribe peer connection per (subscriber, publisher,
source), the lobby, participant updates, and the hooks the benchmark's reference server
overrides. Messages arrive already checked against the signalling contract
(``mcu_vm.signalling``); every message sent is built from its models.

Limits: at most ``MAX_SECTIONS`` media sections per publish, one publish per source and socket,
one screen share per room, ``LOBBY_MAX`` people waiting, participant updates coalesced per room
(``BROADCAST_COALESCE_S``: the latest state, once).
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
from typing import Any, cast

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from pydantic import BaseModel

from mcu_vm.adaptation import (
    AUDIO_BPS,
    CONSTRAINED_FOR_S,
    LAST_N,
    PAUSED,
    QUEUE_DELAY_S,
    SCREEN_PRIORITY,
    Holder,
    Loss,
    Offer,
    Pacer,
    allocate,
    beyond_last_n,
    budget,
    congested,
    pace_rate,
    pooled,
    publisher_target,
    shares,
)
from mcu_vm.passthrough import MAX_LAYER, ForwardTrack, Publisher, pace
from mcu_vm.portal import PortalClient
from mcu_vm.recording import RecordingControl, RoomRecording, Uploader
from mcu_vm.span import Answer as SpanAnswer
from mcu_vm.span import Cap, Caps, Link, MirrorPublisher, RelaySocket, RemotePeerConnection, Span
from mcu_vm.span import End as SpanEnd
from mcu_vm.span import Subscribe as SpanSubscribe
from webmeeting.domain import signalling as contract
from webmeeting.domain.ratelimit import TokenBuckets

log = logging.getLogger("mcu.room")

BROADCAST_COALESCE_S = 0.1  # participant updates go out at most this often per room, latest state only
# media sections one publish may carry, by kind (a screen share is a publish of its own)
MAX_SECTIONS = {"audio": 1, "video": 1}
CHAT_RATE_PER_S, CHAT_BURST = 1.0, 5.0  # chat messages, reactions, change notices, shares: each per participant
LOBBY_MAX = 50  # people waiting at one room's door
ADAPT_EVERY_S = 0.5  # how often each subscriber's video layers are chosen again
ESTIMATE_FRESH_S = 3.0  # a receiver estimate (REMB) older than this is not used
# a socket that dropped without a "leave" (a network change, an outage): the participant stays in
# the room this long, media torn down, for the same tab to come back into its place (role, hand,
# media state kept; the others see "reconnecting", never a leave and a join)
RESUME_GRACE_S = 15.0
CAMERA, SCREEN = "camera", "screen"


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
    pc: RTCPeerConnection | RemotePeerConnection  # a stand-in where it is placed on another worker
    tracks: list[tuple[Publisher | MirrorPublisher, ForwardTrack]]


@dataclass
class Source:
    """One publish of a participant: its peer connection and its tracks by kind."""

    pc: RTCPeerConnection
    publishers: dict[str, Publisher] = field(default_factory=dict)


@dataclass
class Participant:
    id: str
    name: str
    role: str
    ip: str
    ws: web.WebSocketResponse
    audio: bool = True
    video: bool = True
    sources: dict[str, Source] = field(default_factory=dict)  # camera, screen
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)  # by (publisher id, source)
    hand: bool = False
    social: TokenBuckets = field(default_factory=lambda: TokenBuckets(CHAT_RATE_PER_S, CHAT_BURST, max_keys=4))
    layers: Holder = field(default_factory=Holder)  # the video layers it gets, held against flapping
    congested: bool = False  # its link showed congestion in the last adaptation round
    caps: dict[Any, tuple[float, float]] = field(default_factory=dict)  # stream -> (its share, when), while congested
    link_bps: float = 0.0  # what its link took when last congested
    pacer: Pacer = field(default_factory=Pacer)  # its video leaves at its link's pace while constrained
    away: asyncio.TimerHandle | None = None  # its socket dropped: gone when this fires, unless it comes back
    worker: int | None = None  # where its subscriptions are: None here, else that worker (a spanning room)

    @property
    def publishers(self) -> dict[str, Publisher]:
        """The camera's tracks by kind (what mute and stop-video hold)."""
        camera = self.sources.get(CAMERA)
        return camera.publishers if camera else {}

    def all_publishers(self) -> list[tuple[str, Publisher]]:
        return [(name, pub) for name, src in self.sources.items() for pub in src.publishers.values()]

    @property
    def sharing(self) -> bool:
        return SCREEN in self.sources

    def public(self) -> contract.ParticipantInfo:
        return contract.ParticipantInfo(
            id=self.id,
            name=self.name,
            role=self.role,  # type: ignore[arg-type]
            audio=self.audio,
            video=self.video,
            hand=self.hand,
            screen=self.sharing,
            reconnecting=self.away is not None,
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
    lobby: bool = False  # new people wait at the door (the meeting's setting; the organizer toggles it)
    waiting: dict[str, Participant] = field(default_factory=dict)  # at the door, in arrival order
    admitted: set[str] = field(default_factory=set)  # let in (or in before the lobby): they come back directly
    rejected: set[str] = field(default_factory=set)  # turned away at the door for the rest of the session
    # the session's chat, in memory only (never stored, never logged): gone with the room
    chat: deque[contract.ChatMessage] = field(default_factory=lambda: deque(maxlen=contract.CHAT_HISTORY))

    def chat_for(self, participant_id: str) -> list[contract.ChatMessage]:
        return [m for m in self.chat if m.to is None or participant_id in (m.to, m.sender)]

    @property
    def sharer(self) -> Participant | None:
        return next((p for p in self.participants.values() if p.sharing), None)

    def doormen(self) -> list[Participant]:
        """Who sees the lobby and lets people in: the organizer and presenters."""
        return [p for p in self.participants.values() if p.role in ("organizer", "presenter")]


COMMON_VIDEO_CODEC = "video/vp8"  # every browser decodes it (Chromium, Firefox, Safari; H.264 not always)


def room_video_codecs(codecs: list[Any]) -> list[Any]:
    """A publish's negotiated video codecs narrowed to what every subscriber can decode: VP8
    (and its retransmission stream) when the publisher offers it, whatever its order (Safari
    offers H.264 first; Firefox here has no H.264 decoder). The MCU forwards without
    transcoding, so the publisher's codec is every subscriber's."""
    common = [c for c in codecs if c.mimeType.lower() == COMMON_VIDEO_CODEC]
    if not common:
        return codecs  # an H.264-only publisher: forwarded as it is
    types = {c.payloadType for c in common}
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") in types]
    return common + rtx


def codec_preferences(kind: str, negotiated: Any) -> list[Any]:
    """The capabilities matching a publisher's negotiated codec, so the subscriber's peer
    connection carries exactly the packets the publisher sends; for video with RTX, so what a
    subscriber misses is resent on its own stream (retransmissions stay apart from the media in
    the receiver's statistics and loss accounting)."""
    out = []
    caps = RTCRtpSender.getCapabilities(kind).codecs
    for cap in caps:
        if cap.mimeType.lower() != negotiated.mimeType.lower():
            continue
        if cap.name.lower() == "h264":
            want = str(negotiated.parameters.get("profile-level-id") or "").lower()
            have = str(cap.parameters.get("profile-level-id") or "").lower()
            if want[:2] + want[4:] != have[:2] + have[4:]:  # profile and level; ignore constraint flags
                continue
        out.append(cap)
    if kind == "video" and out:
        out += [cap for cap in caps if cap.mimeType.lower() == "video/rtx"]
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
        last_n: int = LAST_N,
    ) -> None:
        self.mcu_id = mcu_id
        self.last_n = last_n
        self.uploader = uploader
        self.recordings = RecordingControl(uploader, token_public_key, mcu_id)
        self.token_public_key = token_public_key
        self.ice_servers = ice_servers
        self.portal = portal
        self.rooms: dict[str, Room] = {}
        self.sockets: set[web.WebSocketResponse] = set()
        self._sends: set[asyncio.Future[None]] = set()  # coalesced broadcasts in flight
        self._adapting: asyncio.Task[None] | None = None
        self.span: Span | None = None  # rooms larger than this worker (set by the worker)
        # as another worker's helper: the rooms it placed people's subscriptions in here, each
        # person there a shadow (no socket, no publish: its subscriptions only)
        self.shadows: dict[str, Room] = {}

    # -- accounting ------------------------------------------------------------------------------

    def load(self) -> dict[str, int]:
        # the connected: a place held for a dropped socket has no media (nor load) until it is back
        participants = sum(1 for r in self.rooms.values() for p in r.participants.values() if p.away is None)
        streams = sum(len(s.tracks) for r in self._all_rooms() for p in r.participants.values() for s in p.subscriptions.values())
        return {"rooms": len(self.rooms), "participants": participants, "forwarded_streams": streams}

    def _all_rooms(self) -> list[Room]:
        """Its own rooms and the shadows of other workers' rooms it forwards for."""
        return [*self.rooms.values(), *self.shadows.values()]

    def forwarding(self) -> dict[str, int]:
        """How the live streams' repair traffic goes, summed (what the network benchmark reads):
        keyframe requests sent to publishers, the subscribers' own requests passed on or held
        back, NACKed packets resent or refused (too old, a repeat, over the budget), and packets
        sent straight to subscribers' sockets, through aiortc's path, or lost to a full socket."""
        out = dict.fromkeys(
            (
                "plis",
                "asks",
                "asks_held",
                "resent",
                "resent_bytes",
                "refused_old",
                "refused_repeat",
                "refused_budget",
                "paused_frames",
                "layer_frames_dropped",
                "paused_streams",
                "estimates",
                "estimate_kbps",
                "steps_undone",
                "ingress_dropped",
                "sent_direct",
                "sent_slow",
                "send_errors",
            ),
            0,
        )
        for room in self._all_rooms():
            for p in room.participants.values():
                out["steps_undone"] += p.layers.undone
                for _, pub in p.all_publishers():
                    out["plis"] += pub.keyframe_requests
                    out["ingress_dropped"] += pub.ingress.dropped if pub.ingress is not None else 0
                for sub in p.subscriptions.values():
                    for _, fwd in sub.tracks:
                        out["asks"] += fwd.keyframe_asks
                        out["asks_held"] += fwd.keyframe_asks_held
                        out["paused_frames"] += fwd.paused_frames
                        out["layer_frames_dropped"] += fwd.layer_frames_dropped
                        out["paused_streams"] += fwd.layer == PAUSED
                        out["sent_direct"] += fwd.gate.sent_direct  # straight to the socket (native)
                        out["sent_slow"] += fwd.gate.sent_slow  # through aiortc's path (paced, relayed)
                        out["send_errors"] += fwd.gate.send_errors
                    for sender in sub.pc.getSenders():
                        remb = sender.__dict__.get("wm_remb")
                        if remb is not None:
                            out["estimates"] += 1
                            out["estimate_kbps"] += int(remb[0] / 1000)
                        budget = sender.__dict__.get("wm_retransmit")
                        if budget is not None:
                            out["resent"] += budget.resent
                            out["resent_bytes"] += budget.resent_bytes
                            for reason, n in budget.refused.items():
                                out[f"refused_{reason}"] += n
        return out

    def live(self) -> dict[str, list[str]]:
        """Who is connected, per meeting: the portal reconciles lost "left" events against it."""
        return {key: sorted(room.participants) for key, room in self.rooms.items()}

    def _config(self) -> RTCConfiguration:
        servers = [RTCIceServer(**s) for s in self.ice_servers]  # type: ignore[arg-type]
        return RTCConfiguration(iceServers=servers)  # explicit, possibly empty: never a default

    # -- bandwidth: what each subscriber is sent ------------------------------------------------

    async def _adapt_forever(self) -> None:
        while True:
            await asyncio.sleep(ADAPT_EVERY_S)
            try:
                self.adapt(time.monotonic())
            except Exception:  # noqa: BLE001 - one bad round must not end adaptation for everyone
                log.exception("adaptation round failed")

    def adapt(self, now: float) -> None:
        """Per subscriber: its receivers' loss over the last second (pooled over its
        subscription connections) and their round trips (a queue filling) decide which temporal layers of each video stream it gets
        (``mcu_vm.adaptation``): everything until it shows congestion. Nobody else's streams
        change; publishers are then asked for what their best-placed subscriber takes."""
        for room in self._all_rooms():
            for p in room.participants.values():
                offers: list[Offer] = []
                gates: dict[Any, tuple[ForwardTrack, bool]] = {}
                estimates: list[float] = []
                losses: list[Loss] = []
                queueing = 0.0  # the most any of its connections' round trips rose over their least
                spoke_at: dict[Any, float | None] = {}  # per stream: when its person last spoke
                for key, sub in p.subscriptions.items():
                    video = [(pub, fwd) for pub, fwd in sub.tracks if pub.kind == "video"]
                    if not video:
                        continue
                    pub, fwd = video[0]
                    for sender in sub.pc.getSenders():
                        remb, reported = sender.__dict__.get("wm_remb"), sender.__dict__.get("wm_loss")
                        if remb and now - remb[1] < ESTIMATE_FRESH_S:
                            estimates.append(remb[0])
                        video_sender = sender.track is not None and sender.track.kind == "video"
                        if reported and video_sender and now - reported[1] < ESTIMATE_FRESH_S:  # audio's few packets are noise
                            losses.append(reported[0])
                        delay = sender.__dict__.get("wm_delay_meter")
                        queued = delay.take() if delay is not None else None
                        if queued is not None:
                            queueing = max(queueing, queued)
                    priority = SCREEN_PRIORITY if key[1] == SCREEN else -pub.joined_at  # a shared screen, then who came first
                    spoke_at[key] = (
                        max((a.speech.spoke_at or 0.0 for a, _ in sub.tracks if a.kind == "audio"), default=0.0) or None
                    )
                    audio = any(other.kind == "audio" for other, _ in sub.tracks)
                    offers.append(Offer(key, priority, pub.layer_rates(now), audio))
                    gates[key] = (fwd, pub.layered)
                if not offers:
                    continue
                offers.sort(key=lambda o: -o.priority)
                sending = sum(
                    o.rates[min(gates[o.key][0].target_layer, len(o.rates) - 1)] + (AUDIO_BPS if o.audio else 0)
                    for o in offers
                    if gates[o.key][0].target_layer != PAUSED and o.rates
                )
                # cameras past the last N speakers are paused whatever the link; the rest share it
                beyond = beyond_last_n(offers, spoke_at, self.last_n)
                offers = [o for o in offers if o.key not in beyond]
                estimate = sum(estimates) if estimates else None  # logged: it does not steer (mcu_vm.adaptation)
                loss = pooled(losses)  # its video streams share one link
                is_congested = congested(loss)
                if is_congested != p.congested:
                    p.congested = is_congested
                    log.info(
                        "a subscriber's link %s: loss %s, queueing %d ms, sent %d kbit/s (its estimate %s kbit/s)",
                        "congested" if is_congested else "clear",
                        None if loss is None else f"{loss.fraction:.1%} of {loss.expected}",
                        int(queueing * 1000),
                        int(sending / 1000),
                        None if estimate is None else int(estimate / 1000),
                    )
                wanted = None
                queue_grows = queueing > QUEUE_DELAY_S  # undoes a step on trial (mcu_vm.adaptation)
                if is_congested:
                    link = budget(loss, sending)
                    wanted = allocate(link, offers)
                    p.caps = {key: (bps, now) for key, bps in shares(link, offers).items()}
                    p.link_bps = link
                undone = p.layers.undone
                chosen = p.layers.apply(wanted, now, {o.key: len(o.rates) - 1 for o in offers}, queue_grows)
                if p.layers.undone != undone:
                    log.info("a subscriber's step up filled its link's queue (%d ms): undone", int(queueing * 1000))
                # paced while it is held below what it could get or was congested of late: its
                # steps up (a resumed stream starts with a keyframe) are spread over its link
                held_down = any(chosen[o.key] < len(o.rates) - 1 for o in offers)
                recent = any(now - t < CONSTRAINED_FOR_S for _, t in p.caps.values())
                p.pacer.rate_bps = pace_rate(p.link_bps, sending) if held_down or recent else None
                for key in gates:
                    self._pace(p, p.subscriptions[key])
                tops = {o.key: len(o.rates) - 1 for o in offers}
                for stream, layer in [*chosen.items(), *((key, PAUSED) for key in beyond)]:
                    fwd, layered = gates[stream]
                    was_paused = fwd.target_layer == PAUSED
                    # at the top of what the publisher sends now: every layer (one it skipped of late included)
                    unlimited = layer != PAUSED and (not layered or layer >= tops.get(stream, 0))
                    fwd.set_layer(MAX_LAYER if unlimited else layer)
                    if was_paused != (layer == PAUSED):  # the page shows the person's name instead
                        publisher_id, source = cast(tuple[str, str], stream)
                        told = contract.VideoPaused(
                            publisher_id=publisher_id,
                            source=source,  # type: ignore[arg-type]
                            paused=layer == PAUSED,
                            reason="speakers" if stream in beyond else "link",
                        )
                        sent = asyncio.ensure_future(p.send(told))
                        self._sends.add(sent)
                        sent.add_done_callback(self._sends.discard)

            self._ask_publishers(room, now)
            if room.key in self.shadows and self.shadows[room.key] is room:
                self._tell_caps(room, now)

    def _tell_caps(self, room: Room, now: float) -> None:
        """A shadow room's subscribers: what their links take of each publisher, to the home
        (which asks each publisher for what its best-placed subscriber takes)."""
        for p in room.participants.values():
            if not isinstance(p.ws, RelaySocket):
                continue
            caps = [
                Cap(publisher=k[0], source=k[1], bps=bps)  # type: ignore[arg-type]
                for k, (bps, t) in p.caps.items()
                if now - t < CONSTRAINED_FOR_S and isinstance(k, tuple)
            ]
            if caps or p.__dict__.get("wm_told_caps"):
                p.__dict__["wm_told_caps"] = bool(caps)
                told = Caps(room=room.key, participant=p.id, caps=caps)
                sent = asyncio.ensure_future(p.ws.link.send(told))
                self._sends.add(sent)
                sent.add_done_callback(self._sends.discard)

    @staticmethod
    def _pace(p: Participant, sub: Subscription) -> None:
        """The subscription's video goes out through the subscriber's pacer (set up once)."""
        for transceiver in sub.pc.getTransceivers():
            transport = transceiver.sender.transport
            if transceiver.kind != "video" or transport is None or transport.__dict__.get("wm_pacer") is p.pacer:
                continue
            pace(transport, p.pacer, {c.payloadType for c in transceiver._codecs if c.payloadType is not None})

    def _ask_publishers(self, room: Room, now: float) -> None:
        """Each video publisher is asked for what its best-placed subscriber can take: everything
        while one of them is unconstrained, otherwise the largest share any of them has for it."""
        for publisher in room.participants.values():
            for source, pub in publisher.all_publishers():
                if pub.kind != "video":
                    continue
                caps: list[float | None] = []
                for p in room.participants.values():
                    if p is publisher or (publisher.id, source) not in p.subscriptions:
                        continue
                    cap = p.caps.get((publisher.id, source))
                    caps.append(cap[0] if cap is not None and now - cap[1] < CONSTRAINED_FOR_S else None)
                pub.ask(publisher_target(source, caps), now)

    # -- membership ------------------------------------------------------------------------------

    async def enter(self, room: Room, p: Participant) -> contract.ErrorCode | None:
        """A checked join: into the room, or to the lobby's door (or why not)."""
        if self._adapting is None:
            self._adapting = asyncio.ensure_future(self._adapt_forever())
        if p.role == "participant" and p.id in room.presenters:
            p.role = "presenter"  # given in this room by the organizer, kept across reconnects
        if not room.lobby or p.role != "participant" or p.id in room.admitted:
            await self.add(room, p)
            return None
        if len(room.waiting) >= LOBBY_MAX:
            return "lobby_full"
        stale = room.waiting.pop(p.id, None)
        if stale is not None and not stale.ws.closed:
            await stale.ws.close()  # the same tab knocking again (its old socket was lost)
        room.waiting[p.id] = p
        await p.send(contract.LobbyWaiting(participant_id=p.id))
        await self._lobby_changed(room)
        return None

    async def leave_lobby(self, room: Room, p: Participant) -> None:
        if room.waiting.get(p.id) is p:
            del room.waiting[p.id]
            await self._lobby_changed(room)
        self.discard_if_empty(room)

    def discard_if_empty(self, room: Room) -> None:
        """The session ends when nobody is in it (or at its door)."""
        if not room.participants and not room.waiting and self.rooms.get(room.key) is room:
            self.recordings.stop(room)  # nobody left to record
            if room.flush is not None:
                room.flush.cancel()
            del self.rooms[room.key]

    async def _lobby_changed(self, room: Room, to: list[Participant] | None = None) -> None:
        state = contract.LobbyState(
            enabled=room.lobby, waiting=[contract.Waiting(id=w.id, name=w.name) for w in room.waiting.values()]
        )
        for other in to if to is not None else room.doormen():
            await other.send(state)

    async def _admit(self, room: Room, p: Participant, message: contract.Admit) -> None:
        if p.role not in ("organizer", "presenter"):
            await p.send(contract.error("not_presenter"))
            return
        waiting = room.waiting.pop(message.participant_id, None)
        if waiting is None:
            await p.send(contract.error("invalid_request"))  # not (or no longer) at the door
            return
        await self._lobby_changed(room)
        if message.admit:
            room.admitted.add(waiting.id)
            await self.add(room, waiting)
            return
        room.rejected.add(waiting.id)  # turned away: that tab does not knock again this session
        await waiting.send(contract.LobbyRejected())
        if not waiting.ws.closed:
            await waiting.ws.close(code=contract.CLOSE_REJECTED)

    async def add(self, room: Room, p: Participant) -> None:
        event = "reconnected" if p.id in room.seen else "joined"
        previous = room.participants.get(p.id)
        if previous is not None:  # the same tab back into its place (its old socket dropped)
            await self.drop(room, previous)  # its media, if it had any left
            if previous.away is not None:
                previous.away.cancel()
            p.hand, p.audio, p.video, p.social = previous.hand, previous.audio, previous.video, previous.social
        room.seen.add(p.id)
        room.admitted.add(p.id)
        p.worker = self.span.place(room, p) if self.span is not None else None
        room.participants[p.id] = p
        token_role = "organizer" if p.role == "organizer" else "participant"  # a presenter is one in the room only
        self.portal.event(event, room.key, p.id, name=p.name, role=token_role, ip=p.ip)
        await p.send(
            contract.Joined(
                participant_id=p.id,
                role=p.role,  # type: ignore[arg-type]
                participants=[o.public() for o in room.participants.values()],
                ice_servers=self.ice_servers,
                recording=room.recording is not None,
                chat=room.chat_for(p.id),
                locked=room.locked,
                lobby=room.lobby,
            )
        )
        if p.role != "participant":
            await self._lobby_changed(room, to=[p])
        arrived = (
            contract.ParticipantUpdated(participant=p.public())
            if previous
            else contract.ParticipantJoined(participant=p.public())
        )
        for other in list(room.participants.values()):
            if other is not p:
                await other.send(arrived)
                for source in list(other.sources):
                    await self._offer_subscription(room, p, other, source)

    async def drop(self, room: Room, p: Participant) -> None:
        """``p``'s socket is gone without a leave: its media ends now (its publishes, what it
        receives, everyone's copies of its streams); it stays in the room for RESUME_GRACE_S,
        shown as reconnecting, then leaves. Once per drop."""
        if p.away is None:
            p.away = asyncio.get_running_loop().call_later(RESUME_GRACE_S, lambda: asyncio.ensure_future(self._expire(room, p)))
            self.portal.event("left", room.key, p.id, reason="dropped")  # connected time stops here
            self._updated(room, p, by=p)
        closing = [sub.pc for sub in self._end_subscriptions(room, p)]
        for _, pub in p.all_publishers():
            await pub.stop()
        closing += [src.pc for src in p.sources.values()]
        p.sources.clear()
        await asyncio.gather(*(pc.close() for pc in closing), return_exceptions=True)
        if not p.ws.closed:
            await p.ws.close()

    async def _expire(self, room: Room, p: Participant) -> None:
        if room.participants.get(p.id) is p:
            await self.remove(room, p, reason="dropped", event=False)  # "left" went to the portal at the drop

    def _end_subscriptions(self, room: Room, p: Participant) -> list[Subscription]:
        """What ``p`` receives and everyone's copies of ``p``'s streams, unhooked (their peer
        connections are the caller's to close)."""
        ended = list(p.subscriptions.values())
        p.subscriptions.clear()
        for other in room.participants.values():
            for key in [k for k in other.subscriptions if k[0] == p.id]:
                ended.append(other.subscriptions.pop(key))
        for sub in ended:
            for pub, fwd in sub.tracks:
                pub.unsubscribe(fwd)
        return ended

    async def remove(self, room: Room, p: Participant, reason: str, *, event: bool = True) -> None:
        current = room.participants.get(p.id)
        if current is not None and current is not p:
            return  # the same tab came back on a new socket: nothing of this connection is left
        room.participants.pop(p.id, None)
        if p.away is not None:
            p.away.cancel()
        closing = [sub.pc for sub in self._end_subscriptions(room, p)]
        room.dirty.discard(p.id)
        for other in room.participants.values():
            await other.send(contract.ParticipantLeft(participant_id=p.id))
        for _, pub in p.all_publishers():
            await pub.stop()
        closing += [src.pc for src in p.sources.values()]
        p.sources.clear()
        await asyncio.gather(*(pc.close() for pc in closing), return_exceptions=True)
        if event:
            self.portal.event("left", room.key, p.id, reason=reason)
        if reason == "replaced" and not p.ws.closed:
            await p.ws.close()
        self.discard_if_empty(room)

    async def _drop_subscription(self, p: Participant, key: tuple[str, str]) -> None:
        """One subscription of ``p`` ends (its answer failed): that stream only, nothing else."""
        sub = p.subscriptions.pop(key, None)
        if sub is None:
            return
        for pub, fwd in sub.tracks:
            pub.unsubscribe(fwd)
        await sub.pc.close()

    async def _end_source(self, room: Room, p: Participant, source: str, by: Participant) -> None:
        """Stop one publish of ``p`` (a screen share): its tracks, and everyone's copies of them."""
        src = p.sources.pop(source, None)
        if src is None:
            return
        closing: list[Any] = [src.pc]
        for other in room.participants.values():
            sub = other.subscriptions.pop((p.id, source), None)
            if sub is not None:
                for pub, fwd in sub.tracks:
                    pub.unsubscribe(fwd)
                closing.append(sub.pc)
        for pub in src.publishers.values():
            await pub.stop()
        await asyncio.gather(*(pc.close() for pc in closing), return_exceptions=True)
        self._updated(room, p, by=by)  # screen: false; the pages drop their copies

    # -- messages --------------------------------------------------------------------------------

    async def on_message(self, room: Room, p: Participant, message: contract.ClientMessage) -> None:
        """A checked message of a participant (``join`` and ``leave`` are the socket's). Someone
        waiting at the door may send nothing but ``leave``."""
        if room.participants.get(p.id) is not p:
            await p.send(contract.error("invalid_request"))
        elif isinstance(message, contract.Publish):
            await self._publish(room, p, message.sdp, message.source)
        elif isinstance(message, contract.Unshare):
            await self._end_source(room, p, SCREEN, by=p)
        elif isinstance(message, contract.SubscribeAnswer):
            key = (message.publisher_id, message.source)
            sub = p.subscriptions.get(key)
            if sub:
                try:
                    await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="answer"))
                except Exception:  # noqa: BLE001 - a refused or declined answer fails that subscription only
                    log.info("a subscription answer was refused")
                    await self._drop_subscription(p, key)
                    await p.send(contract.error("invalid_sdp"))
        elif isinstance(message, contract.Mute):
            audio = p.audio if message.audio is None else message.audio
            video = p.video if message.video is None else message.video
            self._set_media(room, p, audio, video, by=p)
        elif isinstance(message, contract.Moderate | contract.MuteAll | contract.Lock | contract.Lobby):
            await self._moderate(room, p, message)
        elif isinstance(message, contract.Admit):
            await self._admit(room, p, message)
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

    async def _moderate(
        self, room: Room, p: Participant, message: contract.Moderate | contract.MuteAll | contract.Lock | contract.Lobby
    ) -> None:
        """The organizer's actions; anyone else is refused, whatever their page sends."""
        if p.role != "organizer":
            await p.send(contract.error("forbidden"))
            return
        if isinstance(message, contract.Lobby):
            await self._set_lobby(room, message.enabled)
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
        elif message.action == "stop_screen":
            await self._end_source(room, target, SCREEN, by=p)
        elif message.action in ("promote", "demote"):
            if target.role == "organizer":
                await p.send(contract.error("invalid_request"))
                return
            promote = message.action == "promote"
            (room.presenters.add if promote else room.presenters.discard)(target.id)
            if target.role != ("presenter" if promote else "participant"):
                target.role = "presenter" if promote else "participant"
                self._updated(room, target, by=p)
                if promote:
                    await self._lobby_changed(room, to=[target])  # presenters see the door too
                else:
                    await self._end_source(room, target, SCREEN, by=p)  # a participant shares no screen
        else:
            room.removed.add(target.id)  # holds for the session: that participant id cannot come back
            await target.send(contract.Removed())
            await self.remove(room, target, reason="removed")
            if not target.ws.closed:
                await target.ws.close(code=contract.CLOSE_REMOVED)
            await self._set_lobby(room, True)  # a fresh join of theirs waits at the door

    async def _set_lobby(self, room: Room, enabled: bool) -> None:
        if room.lobby == enabled:
            return
        room.lobby = enabled
        await self._lobby_changed(room)
        if not enabled:  # the door opens: everyone waiting comes in
            for waiting in list(room.waiting.values()):
                del room.waiting[waiting.id]
                await self.add(room, waiting)

    def admits(self, room: Room, participant_id: str, role: str) -> contract.ErrorCode | None:
        """Why a (re)joining participant may not come in, or None."""
        if participant_id in room.removed:
            return "removed"
        if participant_id in room.rejected:
            return "rejected"
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

    async def _publish(self, room: Room, p: Participant, offer_sdp: str, source: str) -> None:
        if source in p.sources:
            await p.send(contract.error("invalid_request"))  # one publish per source and socket
            return
        if source == SCREEN:
            if p.role not in ("organizer", "presenter"):
                await p.send(contract.error("not_presenter"))
                return
            if room.sharer is not None:
                await p.send(contract.error("screen_busy"))  # one share at a time
                return
            if not p.social.allow("share", time.monotonic()):
                await p.send(contract.error("rate_limited"))  # each share is a peer connection
                return
        sections = media_sections(offer_sdp)
        if not sections or any(n > MAX_SECTIONS.get(kind, 0) for kind, n in sections.items()):
            await p.send(contract.error("too_many_tracks"))  # each section would be a receiver, a task, a decoder thread
            return
        pc = RTCPeerConnection(self._config())
        src = p.sources[source] = Source(pc)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver._codecs = room_video_codecs(transceiver._codecs)  # the answer names only these
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:  # noqa: BLE001 - a refused offer: that publish fails, the participant stays
            log.info("a publish offer was refused")
            if p.sources.get(source) is src:
                del p.sources[source]
            await pc.close()
            await p.send(contract.error("invalid_sdp"))
            return
        if p.sources.get(source) is not src:  # stopped (or the participant left) meanwhile
            await pc.close()
            return
        for transceiver in pc.getTransceivers():
            codecs = transceiver._codecs  # negotiated, preferred first
            if transceiver.receiver.track is not None and codecs and transceiver.direction in ("recvonly", "sendrecv"):
                pub = self.make_publisher(transceiver.receiver.track, transceiver.receiver, codecs[0])
                pub.source = source
                if source == CAMERA:
                    pub.hold(not (p.audio if pub.kind == "audio" else p.video))  # a microphone already off stays held
                src.publishers[pub.kind] = pub
                if room.recording is not None:
                    room.recording.add(pub, p.id)
        await p.send(contract.PublishAnswer(sdp=pc.localDescription.sdp, source=source))  # type: ignore[arg-type]
        if source == SCREEN:
            self._updated(room, p, by=p)  # everyone's layout turns to the shared screen
        for other in list(room.participants.values()):
            if other is not p:
                await self._offer_subscription(room, other, p, source)

    async def _offer_subscription(self, room: Room, subscriber: Participant, publisher: Participant, source: str) -> None:
        src = publisher.sources.get(source)
        key = (publisher.id, source)
        if key in subscriber.subscriptions or src is None or not src.publishers:
            return
        if subscriber.worker is not None and self.span is not None:
            helper = await self.span.helper(subscriber.worker)
            src = publisher.sources.get(source)
            if (
                key in subscriber.subscriptions
                or src is None
                or not src.publishers
                or room.participants.get(subscriber.id) is not subscriber
            ):
                return  # offered, stopped or gone meanwhile
            if helper is not None:
                pubs = [src.publishers[kind] for kind in ("audio", "video") if kind in src.publishers]
                stand_in = self.span.stand_in(helper, room.key, subscriber.id, publisher.id, source, pubs)
                sub = subscriber.subscriptions[key] = Subscription(stand_in, [])
                sdp = await stand_in.offer()
                if subscriber.subscriptions.get(key) is not sub:
                    await stand_in.close()
                    return
                if sdp is None:  # that stream only: the participant stays
                    await self._drop_subscription(subscriber, key)
                    return
                await subscriber.send(
                    contract.SubscribeOffer(publisher_id=publisher.id, name=publisher.name, sdp=sdp, source=source)  # type: ignore[arg-type]
                )
                return
            subscriber.worker = None  # its helper is not there: everything here
        pc = RTCPeerConnection(self._config())
        tracks: list[tuple[Publisher | MirrorPublisher, ForwardTrack]] = []
        for kind in ("audio", "video"):
            pub = src.publishers.get(kind)
            if pub is None:
                continue
            tracks.append((pub, self.attach(pc, pub)))
        subscriber.subscriptions[key] = Subscription(pc, tracks)
        await pc.setLocalDescription(await pc.createOffer())
        await subscriber.send(
            contract.SubscribeOffer(
                publisher_id=publisher.id,
                name=publisher.name,
                sdp=pc.localDescription.sdp,
                source=source,  # type: ignore[arg-type]
            )
        )

    # -- a room larger than this worker (``mcu_vm.span``) ----------------------------------------

    def publisher_by_pipe(self, pipe_id: int) -> Publisher | None:
        for room in self.rooms.values():
            for p in room.participants.values():
                for _, pub in p.all_publishers():
                    if pub.pipe_id == pipe_id:
                        return pub
        return None

    def piped_publishers(self, out: Any) -> list[Publisher]:
        return [
            pub
            for room in self.rooms.values()
            for p in room.participants.values()
            for _, pub in p.all_publishers()
            if out in pub.pipes
        ]

    def remote_caps(self, room_key: str, participant_id: str, worker: int, caps: list[Cap]) -> None:
        """What a helper's adaptation found a subscriber placed there can take of each publisher."""
        room = self.rooms.get(room_key)
        p = room.participants.get(participant_id) if room is not None else None
        if p is None or p.worker != worker:
            return
        now = time.monotonic()
        p.caps = {(c.publisher, c.source): (c.bps, now) for c in caps}

    async def tell(self, room_key: str, participant_id: str, worker: int, message: dict[str, Any]) -> None:
        """A helper's notice for a subscriber placed there (only ``video_paused``) to its socket."""
        room = self.rooms.get(room_key)
        p = room.participants.get(participant_id) if room is not None else None
        if p is None or p.worker != worker or message.get("type") != "video_paused":
            return
        try:
            notice = contract.VideoPaused.model_validate({k: v for k, v in message.items() if k != "type"})
        except ValueError:
            return
        await p.send(notice)

    async def helper_lost(self, worker: int) -> None:
        """A helper's link ended (it restarted): the subscriptions placed there come here."""
        for room in list(self.rooms.values()):
            for p in list(room.participants.values()):
                if p.worker != worker:
                    continue
                p.worker = None
                for key in [k for k, sub in p.subscriptions.items() if isinstance(sub.pc, RemotePeerConnection)]:
                    await self._drop_subscription(p, key)
                for other in list(room.participants.values()):
                    if other is not p:
                        for source in list(other.sources):
                            await self._offer_subscription(room, p, other, source)

    def _shadow(self, link: Link, room_key: str, participant_id: str) -> tuple[Room, Participant] | None:
        room = self.shadows.get(room_key)
        p = room.participants.get(participant_id) if room is not None else None
        if room is None or p is None or not isinstance(p.ws, RelaySocket) or p.ws.link is not link:
            return None
        return room, p

    async def subscribe_for_home(self, link: Link, ask: SpanSubscribe, mirrors: list[MirrorPublisher]) -> str | None:
        """A subscription another worker placed here: made, its offer returned."""
        if self._adapting is None:
            self._adapting = asyncio.ensure_future(self._adapt_forever())
        room = self.shadows.get(ask.room)
        if room is None:
            room = self.shadows[ask.room] = Room(ask.room)
        p = room.participants.get(ask.participant)
        if p is None or not isinstance(p.ws, RelaySocket) or p.ws.link is not link:
            if p is not None:
                return None  # the same room from another home: never
            relay = RelaySocket(link, ask.room, ask.participant)
            p = room.participants[ask.participant] = Participant(ask.participant, "", "participant", "", relay)  # type: ignore[arg-type]
        key = (ask.publisher, ask.source)
        if key in p.subscriptions:
            await self._drop_subscription(p, key)
        pc = RTCPeerConnection(self._config())
        tracks: list[tuple[Publisher | MirrorPublisher, ForwardTrack]] = [(m, self.attach(pc, m)) for m in mirrors]
        sub = p.subscriptions[key] = Subscription(pc, tracks)
        await pc.setLocalDescription(await pc.createOffer())
        if p.subscriptions.get(key) is not sub:
            return None
        return str(pc.localDescription.sdp)

    async def answer_for_home(self, link: Link, answer: SpanAnswer) -> bool:
        found = self._shadow(link, answer.room, answer.participant)
        key = (answer.publisher, answer.source)
        sub = found[1].subscriptions.get(key) if found is not None else None
        if found is None or sub is None:
            return False
        try:
            await sub.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        except Exception:  # noqa: BLE001 - a refused answer fails that subscription only
            log.info("a piped subscription's answer was refused")
            await self._drop_subscription(found[1], key)
            return False
        return True

    async def end_for_home(self, link: Link, end: SpanEnd) -> None:
        found = self._shadow(link, end.room, end.participant)
        if found is None:
            return
        room, p = found
        await self._drop_subscription(p, (end.publisher, end.source))
        if not p.subscriptions:
            room.participants.pop(p.id, None)
        if not room.participants:
            self.shadows.pop(room.key, None)

    async def home_lost(self, link: Link) -> None:
        """A home worker's link ended: what it placed here ends."""
        for key, room in list(self.shadows.items()):
            for p in list(room.participants.values()):
                if isinstance(p.ws, RelaySocket) and p.ws.link is link:
                    for sub_key in list(p.subscriptions):
                        await self._drop_subscription(p, sub_key)
                    room.participants.pop(p.id, None)
            if not room.participants:
                self.shadows.pop(key, None)

    # -- forwarding (the benchmark's reference server overrides these two) -----------------------

    def make_publisher(self, track: Any, receiver: Any, codec: Any) -> Publisher:
        """Fan out one incoming track, forwarded encoded."""
        pub = Publisher(track, receiver, codec)
        pub.start()
        return pub

    def attach(self, pc: RTCPeerConnection, pub: Publisher | MirrorPublisher) -> ForwardTrack:
        """Add a subscriber's copy of ``pub`` to ``pc``, pinned to the publisher's codec."""
        fwd = pub.subscribe()
        transceiver = pc.addTransceiver(fwd, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences(pub.kind, pub.codec))
        transceiver.sender._send_keyframe = fwd.keyframe_requested  # type: ignore[method-assign]  # PLI/FIR -> publisher
        return fwd

    async def close(self) -> None:
        """Shut down: every participant leaves, every peer connection closes."""
        if self._adapting is not None:
            self._adapting.cancel()
        for room in list(self.rooms.values()):
            for p in list(room.participants.values()):
                await self.remove(room, p, reason="mcu_shutdown")
        for room in list(self.shadows.values()):
            for p in list(room.participants.values()):
                for key in list(p.subscriptions):
                    await self._drop_subscription(p, key)
        self.shadows.clear()
        for ws in list(self.sockets):
            await ws.close()
