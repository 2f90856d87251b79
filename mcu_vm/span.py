"""A room larger than one worker (one core): mediasoup's piped routers, for this MCU's workers.

The room's home worker (the one its meeting key hashes to) keeps what is cheap and must be in one
place: every socket of the room, the room's state, and the publishers' connections (ingress,
keyframe requests, recordings). What grows with the room squared, the subscriptions, is placed
per person: once the home worker holds ``span_after`` of the room's people, each newcomer's
subscriptions go to the worker holding the fewest of the room (``place``).

Between the home worker and another ("a helper"), over one link:
- control, a loopback WebSocket to the helper's ``/span`` (a secret the supervisor shares with
  its workers): the home asks for a subscription (the helper answers with its offer), passes the
  subscriber's answer, ends it, and tells twice a second what the helper's adaptation needs of
  each piped publisher (its layers' rates, when its person last spoke); the helper sends back
  keyframe requests (coalesced at the home, as everybody's), what its subscribers' links can
  take of each publisher (the publisher is asked for what its best-placed subscriber takes,
  wherever that one is) and the pages' ``video_paused`` notices (relayed to the socket);
- media, UDP datagrams on loopback: each publisher's packet once per helper with what the home
  read of it (``HEADER``), never again parsed; the helper's ``MirrorPublisher`` fans it out with
  the same native pass (``mcu_vm.passthrough.Fanout``). A datagram without the link's token is
  dropped: another local process cannot inject media.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import aiohttp
from aiohttp import WSMsgType, web
from aiortc import RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from mcu_vm.adaptation import SPAN_AFTER, SpeechDetector
from mcu_vm.passthrough import Fanout, Publisher

log = logging.getLogger("mcu.span")

SECRET_HEADER = "X-Span-Secret"  # noqa: S105 - a header name
STATE_EVERY_S = 0.5  # what the helpers' adaptation needs of each piped publisher, this often
REQUEST_TIMEOUT_S = 10.0
MAX_CONTROL_BYTES = 256 * 1024  # an offer of a few sections, a state of a room's publishers
# token, pipe id, sequence number, timestamp, marker, keyframe, temporal layer (-1: none),
# picture id offset (-1: none), its bits, audio level byte (-1: none), held
HEADER = struct.Struct("!8sIHIBBbhBhB")
TOKEN_BYTES = 8
MAX_DATAGRAM = 1500 + HEADER.size


def place(counts: Sequence[int], home: int, span_after: int) -> int:
    """The worker for a room's next person, from how many of the room each worker holds: its
    home until that holds ``span_after``; then the one holding fewest (the home on a tie)."""
    if len(counts) <= 1 or counts[home] < span_after:
        return home
    least = min(counts)
    return home if counts[home] == least else counts.index(least)


def pack(
    token: bytes,
    pipe_id: int,
    seq: int,
    ts: int,
    marker: bool,
    payload: bytes,
    keyframe: bool,
    layer: int,
    pid_at: int,
    pid_bits: int,
    level: int,
    held: bool,
) -> bytes:
    return HEADER.pack(token, pipe_id, seq, ts, marker, keyframe, layer, pid_at, pid_bits, level, held) + payload


def unpack(token: bytes, data: bytes) -> tuple[int, int, int, bool, bytes, bool, int, int, int, int, bool] | None:
    """A datagram of the link with ``token``: (pipe id, seq, ts, marker, payload, keyframe, layer,
    pid_at, pid_bits, level, held), or None (not ours, cut, out of range)."""
    if len(data) <= HEADER.size or len(data) > MAX_DATAGRAM:
        return None
    got, pipe_id, seq, ts, marker, keyframe, layer, pid_at, pid_bits, level, held = HEADER.unpack_from(data)
    if not secrets.compare_digest(got, token) or layer < -1 or layer > 7 or level < -1 or level > 255:
        return None
    payload = data[HEADER.size :]
    if pid_at != -1 and not (pid_at >= 0 and pid_bits in (7, 15) and pid_at + (2 if pid_bits == 15 else 1) <= len(payload)):
        return None
    return pipe_id, seq, ts, bool(marker), payload, bool(keyframe), layer, pid_at, pid_bits, level, bool(held)


# -- control messages ------------------------------------------------------------------------


class Codec(BaseModel):
    mime: str = Field(max_length=64)
    clock_rate: int = Field(ge=1, le=200_000)
    channels: int | None = Field(default=None, ge=1, le=8)
    parameters: dict[str, str | int | None] = Field(default_factory=dict, max_length=16)

    @classmethod
    def of(cls, codec: Any) -> Codec:
        return cls(mime=codec.mimeType, clock_rate=codec.clockRate, channels=codec.channels, parameters=dict(codec.parameters))

    def parameters_(self) -> RTCRtpCodecParameters:
        return RTCRtpCodecParameters(
            mimeType=self.mime, clockRate=self.clock_rate, channels=self.channels, parameters=dict(self.parameters)
        )


class PipedTrack(BaseModel):
    pipe: int = Field(ge=1)
    kind: Literal["audio", "video"]
    codec: Codec


Key = Annotated[str, Field(min_length=1, max_length=64)]


class Subscribe(BaseModel):
    op: Literal["subscribe"] = "subscribe"
    id: int
    room: Key
    participant: Key
    publisher: Key
    source: Literal["camera", "screen"]
    tracks: list[PipedTrack] = Field(min_length=1, max_length=2)


class Answer(BaseModel):
    op: Literal["answer"] = "answer"
    id: int
    room: Key
    participant: Key
    publisher: Key
    source: Literal["camera", "screen"]
    sdp: str = Field(max_length=64 * 1024)


class End(BaseModel):
    op: Literal["end"] = "end"
    room: Key
    participant: Key
    publisher: Key
    source: Literal["camera", "screen"]


class PipeState(BaseModel):
    pipe: int
    rates: list[float] = Field(max_length=8)
    layered: bool
    spoke_at: float | None
    joined_at: float
    source: Literal["camera", "screen"]


class State(BaseModel):
    op: Literal["state"] = "state"
    pipes: list[PipeState] = Field(max_length=4096)


class Reply(BaseModel):
    op: Literal["reply"] = "reply"
    re: int
    ok: bool
    sdp: str | None = None


class Hello(BaseModel):
    op: Literal["hello"] = "hello"
    port: int = Field(ge=1, le=65535)  # the helper's media port
    token: str = Field(min_length=2 * TOKEN_BYTES, max_length=2 * TOKEN_BYTES)


class Keyframe(BaseModel):
    op: Literal["keyframe"] = "keyframe"
    pipe: int


class Cap(BaseModel):
    publisher: Key
    source: Literal["camera", "screen"]
    bps: float = Field(ge=0)


class Caps(BaseModel):
    op: Literal["caps"] = "caps"
    room: Key
    participant: Key
    caps: list[Cap] = Field(max_length=512)


class Tell(BaseModel):
    op: Literal["tell"] = "tell"
    room: Key
    participant: Key
    message: dict[str, Any]


Control = Annotated[
    Subscribe | Answer | End | State | Reply | Hello | Keyframe | Caps | Tell,
    Field(discriminator="op"),
]
CONTROL: TypeAdapter[Control] = TypeAdapter(Control)


class Link:
    """One control WebSocket between two workers: requests with replies, and notices."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, message: BaseModel) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(message.model_dump_json())

    async def request(self, message: Subscribe | Answer) -> Reply:
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[message.id] = waiter
        try:
            await self.send(message)
            return await asyncio.wait_for(waiter, REQUEST_TIMEOUT_S)
        except TimeoutError:
            return Reply(re=message.id, ok=False)
        finally:
            self._waiting.pop(message.id, None)

    async def serve(self, handle: Callable[[Any], Any]) -> None:
        """Until the socket ends: replies to their requests, everything else to ``handle``."""
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    break
                try:
                    message = CONTROL.validate_json(msg.data)
                except ValidationError:
                    log.warning("a span message was not understood")
                    continue
                if isinstance(message, Reply):
                    waiter = self._waiting.get(message.re)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
                    continue
                try:
                    await handle(message)
                except Exception:  # noqa: BLE001 - one bad message never ends the link
                    log.exception("a span %s failed", message.op)
        finally:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_result(Reply(re=0, ok=False))


class PipeOut:
    """The home side of a helper's media: each piped packet in one datagram (``Publisher.pipes``)."""

    def __init__(self, port: int, token: bytes) -> None:
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self.sock.connect(("127.0.0.1", port))
        self.sent = 0
        self.dropped = 0  # the helper's socket was full

    def send(
        self,
        pipe_id: int,
        seq: int,
        ts: int,
        marker: bool,
        payload: bytes,
        keyframe: bool,
        layer: int,
        pid_at: int,
        pid_bits: int,
        level: int,
        held: bool,
    ) -> None:
        try:
            self.sock.send(pack(self.token, pipe_id, seq, ts, marker, payload, keyframe, layer, pid_at, pid_bits, level, held))
            self.sent += 1
        except (BlockingIOError, ConnectionRefusedError):
            self.dropped += 1

    def close(self) -> None:
        self.sock.close()


class RemotePeerConnection:
    """What the home worker holds as the peer connection of a subscription placed on a helper:
    its answer goes there, its end too. It has no senders here (the helper adapts them)."""

    def __init__(self, helper: Helper, subscribe: Subscribe, publishers: list[Publisher]) -> None:
        self.helper = helper
        self.subscribe = subscribe
        self.publishers = publishers
        self.closed = False

    async def setRemoteDescription(self, description: RTCSessionDescription) -> None:  # noqa: N802 - aiortc's name
        s = self.subscribe
        answer = Answer(
            id=self.helper.link.next_id(),
            room=s.room,
            participant=s.participant,
            publisher=s.publisher,
            source=s.source,
            sdp=description.sdp,
        )
        reply = await self.helper.link.request(answer)
        if not reply.ok:
            raise ValueError("the helper refused the answer")

    async def offer(self) -> str | None:
        """The helper's offer for the subscriber (None: it could not make one)."""
        reply = await self.helper.link.request(self.subscribe)
        return reply.sdp if reply.ok else None

    def getSenders(self) -> list[Any]:  # noqa: N802
        return []

    def getTransceivers(self) -> list[Any]:  # noqa: N802
        return []

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pub in self.publishers:
            pub.unpipe(self.helper.out)
        s = self.subscribe
        await self.helper.link.send(End(room=s.room, participant=s.participant, publisher=s.publisher, source=s.source))


class Helper:
    """The home worker's link to one helper worker."""

    def __init__(self, index: int, link: Link, out: PipeOut) -> None:
        self.index = index
        self.link = link
        self.out = out
        self.task: asyncio.Task[None] | None = None


class MirrorPublisher(Fanout):
    """A publisher of a room whose home is another worker, as this worker's subscribers see it:
    its packets come down the pipe as the home read them, its rates and speech with the home's
    state, and its subscribers' keyframe requests go back up to be coalesced there."""

    def __init__(self, kind: str, codec: RTCRtpCodecParameters, ask: Callable[[], None]) -> None:
        super().__init__(kind)
        self.codec = codec
        self.codec_name = codec.name.lower()
        self._ask_home = ask
        self.source = "camera"
        self.joined_at = time.monotonic()
        self.layered = False
        self.rates: list[float] = [0.0]
        self.speech = SpeechDetector()  # only its ``spoke_at``, as the home last said
        self.held = False
        self.received = 0

    def layer_rates(self, now: float | None = None) -> list[float]:
        return list(self.rates)

    def request_keyframe(self) -> None:
        if self.kind == "video":
            self._ask_home()

    def piped(
        self,
        seq: int,
        ts: int,
        marker: bool,
        payload: bytes,
        keyframe: bool,
        layer: int,
        pid_at: int,
        pid_bits: int,
        level: int,
        held: bool,
    ) -> None:
        self.received += 1
        if held != self.held:
            self.held = held
            if not held:  # resumed: its video starts again at a keyframe (the home asked for one)
                for fwd in self.forwards:
                    fwd.resync()
        if self._gates:
            self.fan_out(seq, ts, marker, payload, keyframe, layer, pid_at, pid_bits, level, held)


class _Media(asyncio.DatagramProtocol):
    def __init__(self, span: Span) -> None:
        self.span = span

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.span.piped(data)


class Span:
    """This worker's part in rooms that span workers: as a room's home (``helpers``), and as a
    helper of other workers' rooms (``homes``: their mirrors and the shadow rooms that hold the
    subscriptions placed here)."""

    def __init__(self, registry: Any, index: int, ports: Sequence[int], secret: str, span_after: int = SPAN_AFTER) -> None:
        self.registry = registry
        self.index = index
        self.ports = list(ports)
        self.secret = secret
        self.span_after = span_after
        self.helpers: dict[int, Helper] = {}
        self._connecting: dict[int, asyncio.Future[Helper | None]] = {}
        # as a helper: per home link, its token, mirrors by pipe id, and the rooms it placed here
        self.homes: dict[bytes, tuple[Link, dict[int, MirrorPublisher]]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.unknown_datagrams = 0
        self._state_task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return len(self.ports) > 1 and bool(self.secret)

    async def start(self) -> None:
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
        transport, _ = await loop.create_datagram_endpoint(lambda: _Media(self), sock=sock)
        self.transport = transport
        self.port = int(sock.getsockname()[1])
        self._state_task = asyncio.ensure_future(self._tell_state_forever())

    async def close(self) -> None:
        if self._state_task is not None:
            self._state_task.cancel()
        for helper in list(self.helpers.values()):
            await helper.link.ws.close()
            helper.out.close()
        for link, _ in list(self.homes.values()):
            await link.ws.close()
        if self.transport is not None:
            self.transport.close()

    # -- as a room's home ------------------------------------------------------------------------

    def place(self, room: Any, participant: Any) -> int | None:
        """Where ``participant``'s subscriptions go: None for here, else a helper's index."""
        if not self.enabled:
            return None
        counts = [0] * len(self.ports)
        for other in room.participants.values():
            if other is not participant:
                counts[self.index if other.worker is None else other.worker] += 1
        chosen = place(counts, self.index, self.span_after)
        return None if chosen == self.index else chosen

    async def helper(self, index: int) -> Helper | None:
        """The link to worker ``index``, made at its first use (None: that worker is not there)."""
        if index in self.helpers and not self.helpers[index].link.ws.closed:
            return self.helpers[index]
        if index not in self._connecting:
            self._connecting[index] = asyncio.ensure_future(self._connect(index))
        try:
            return await asyncio.shield(self._connecting[index])
        finally:
            if self._connecting.get(index) is not None and self._connecting[index].done():
                del self._connecting[index]

    async def _connect(self, index: int) -> Helper | None:
        session = aiohttp.ClientSession(trust_env=False)
        try:
            ws = await session.ws_connect(
                f"http://127.0.0.1:{self.ports[index]}/span",
                headers={SECRET_HEADER: self.secret},
                max_msg_size=MAX_CONTROL_BYTES,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            )
            first = CONTROL.validate_json(await ws.receive_str(timeout=5))
        except (aiohttp.ClientError, TimeoutError, ValidationError, TypeError):
            await session.close()
            log.warning("worker %d is not reachable for a spanning room", index)
            return None
        if not isinstance(first, Hello):
            await ws.close()
            await session.close()
            return None
        helper = Helper(index, Link(ws), PipeOut(first.port, bytes.fromhex(first.token)))
        self.helpers[index] = helper

        async def run() -> None:
            try:
                await helper.link.serve(lambda m: self._from_helper(helper, m))
            finally:
                if self.helpers.get(index) is helper:
                    del self.helpers[index]
                helper.out.close()
                await self.registry.helper_lost(index)
                await session.close()

        helper.task = asyncio.ensure_future(run())
        return helper

    def stand_in(
        self, helper: Helper, room_key: str, subscriber_id: str, publisher_id: str, source: str, publishers: list[Publisher]
    ) -> RemotePeerConnection:
        """A subscription placed on ``helper``: the publishers piped to it from now on (its first
        frame is not left waiting), and the peer connection that stands in for it here."""
        tracks = [PipedTrack(pipe=p.pipe_id, kind=p.kind, codec=Codec.of(p.codec)) for p in publishers]  # type: ignore[arg-type]
        ask = Subscribe(
            id=helper.link.next_id(),
            room=room_key,
            participant=subscriber_id,
            publisher=publisher_id,
            source=source,  # type: ignore[arg-type]
            tracks=tracks,
        )
        for pub in publishers:
            pub.pipe(helper.out)
        return RemotePeerConnection(helper, ask, publishers)

    async def _from_helper(self, helper: Helper, message: Any) -> None:
        if isinstance(message, Keyframe):
            pub = self.registry.publisher_by_pipe(message.pipe)
            if pub is not None:
                pub.request_keyframe()
        elif isinstance(message, Caps):
            self.registry.remote_caps(message.room, message.participant, helper.index, message.caps)
        elif isinstance(message, Tell):
            await self.registry.tell(message.room, message.participant, helper.index, message.message)

    async def _tell_state_forever(self) -> None:
        while True:
            await asyncio.sleep(STATE_EVERY_S)
            try:
                await self.tell_state()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("span state round failed")

    async def tell_state(self) -> None:
        """Each helper: what its adaptation needs of the publishers piped to it."""
        now = time.monotonic()
        for helper in list(self.helpers.values()):
            states = []
            for pub in self.registry.piped_publishers(helper.out):
                states.append(
                    PipeState(
                        pipe=pub.pipe_id,
                        rates=pub.layer_rates(now),
                        layered=pub.layered,
                        spoke_at=pub.speech.spoke_at,
                        joined_at=pub.joined_at,
                        source=pub.source,  # type: ignore[arg-type]
                    )
                )
            if states:
                await helper.link.send(State(pipes=states))

    # -- as a helper of another worker's room ----------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """``/span``: a home worker's link (loopback, and the supervisor's secret)."""
        if (
            not self.enabled
            or request.remote not in ("127.0.0.1", "::1")
            or not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), self.secret)
        ):
            raise web.HTTPNotFound()
        ws = web.WebSocketResponse(max_msg_size=MAX_CONTROL_BYTES)
        await ws.prepare(request)
        token = secrets.token_bytes(TOKEN_BYTES)
        link = Link(ws)
        mirrors: dict[int, MirrorPublisher] = {}
        self.homes[token] = (link, mirrors)
        try:
            await link.send(Hello(port=self.port, token=token.hex()))
            await link.serve(lambda m: self._from_home(link, mirrors, m))
        finally:
            del self.homes[token]
            await self.registry.home_lost(link)
            for mirror in mirrors.values():
                mirror.end()
        return ws

    def piped(self, data: bytes) -> None:
        token = data[:TOKEN_BYTES]
        home = self.homes.get(token)
        fields = unpack(token, data) if home is not None else None
        if home is None or fields is None:
            self.unknown_datagrams += 1
            return
        mirror = home[1].get(fields[0])
        if mirror is not None:
            mirror.piped(*fields[1:])

    async def _from_home(self, link: Link, mirrors: dict[int, MirrorPublisher], message: Any) -> None:
        if isinstance(message, Subscribe):
            for track in message.tracks:
                if track.pipe not in mirrors:
                    ask = functools.partial(self._ask_keyframe, link, track.pipe)
                    mirrors[track.pipe] = MirrorPublisher(track.kind, track.codec.parameters_(), ask)
            try:
                sdp = await self.registry.subscribe_for_home(link, message, [mirrors[t.pipe] for t in message.tracks])
            except Exception:  # noqa: BLE001 - that subscription fails, nothing else
                log.exception("a piped subscription failed")
                sdp = None
            await link.send(Reply(re=message.id, ok=sdp is not None, sdp=sdp))
        elif isinstance(message, Answer):
            ok = await self.registry.answer_for_home(link, message)
            await link.send(Reply(re=message.id, ok=ok))
        elif isinstance(message, End):
            await self.registry.end_for_home(link, message)
            for pipe in [p for p, m in mirrors.items() if not m.forwards]:
                mirrors.pop(pipe).end()
        elif isinstance(message, State):
            for state in message.pipes:
                mirror = mirrors.get(state.pipe)
                if mirror is not None:
                    mirror.rates = state.rates or [0.0]
                    mirror.layered = state.layered
                    mirror.joined_at = state.joined_at
                    mirror.source = state.source
                    mirror.speech.spoke_at = state.spoke_at

    def _ask_keyframe(self, link: Link, pipe: int) -> None:
        sent = asyncio.ensure_future(link.send(Keyframe(pipe=pipe)))
        self.registry._sends.add(sent)
        sent.add_done_callback(self.registry._sends.discard)


class RelaySocket:
    """A shadow participant's socket on a helper: what it is told goes to the home worker, which
    holds the real one (only notices a helper may send: ``video_paused``)."""

    def __init__(self, link: Link, room: str, participant: str) -> None:
        self.link = link
        self.room = room
        self.participant = participant

    @property
    def closed(self) -> bool:
        return bool(self.link.ws.closed)

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.link.send(Tell(room=self.room, participant=self.participant, message=data))

    async def close(self, code: int = 1000) -> None:
        return None
