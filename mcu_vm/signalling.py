"""The MCU's public socket: one WebSocket per participant, every message checked against the
signalling contract (``webmeeting.domain.signalling``) before the room sees it.

Limits (the MCU's signalling is public): the join token within ``JOIN_TIMEOUT_S``; frames of at
most ``MAX_MESSAGE_BYTES``; a token bucket per socket (``MESSAGE_RATE_PER_S``,
``MESSAGE_BURST``; over it: ``rate_limited``, and the socket is closed after ``MAX_DROPPED``
refused messages). A message outside the contract gets ``invalid_request``; one that fails in
the room fails alone (the participant and the room stay).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from mcu_vm.room import Participant, Room, RoomRegistry
from webmeeting import tokens
from webmeeting.domain import signalling as contract
from webmeeting.domain.ratelimit import TokenBuckets

log = logging.getLogger("mcu.signalling")

CLIENT_IP_HEADER = "X-MCU-Client-IP"

JOIN_TIMEOUT_S = 10  # a socket must present its token this fast
MAX_MESSAGE_BYTES = 64 * 1024  # SDPs are a few KiB
MESSAGE_RATE_PER_S = 10.0  # sustained signalling messages per socket
MESSAGE_BURST = 60.0  # a joiner answers one subscription offer per publisher at once
MAX_DROPPED = 200  # refused (over-rate) messages before the MCU closes the socket
# a ping after this long without a frame from the browser, its pong due within half of it: an
# outage of several seconds (a lift, a network change) ends nobody's meeting, while a socket
# that is gone is found within 1.5x this
WS_HEARTBEAT_S = 20.0
CLOSE_UNAUTHENTICATED, CLOSE_INVALID, CLOSE_FULL, CLOSE_RATE, CLOSE_REMOVED = (
    contract.CLOSE_UNAUTHENTICATED,
    contract.CLOSE_INVALID,
    contract.CLOSE_FULL,
    contract.CLOSE_RATE,
    contract.CLOSE_REMOVED,
)


def loop_time() -> float:
    return time.monotonic()


async def refuse(ws: web.WebSocketResponse, code: contract.ErrorCode) -> None:
    """Tell the socket why and close it."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(contract.wire(contract.error(code)))
    closes = {
        "unauthenticated": CLOSE_UNAUTHENTICATED,
        "meeting_full": CLOSE_FULL,
        "removed": CLOSE_REMOVED,
        "meeting_locked": CLOSE_FULL,
        "lobby_full": CLOSE_FULL,
        "rejected": CLOSE_REMOVED,
    }
    await ws.close(code=closes.get(code, CLOSE_INVALID))


class Signalling:
    """Accepts sockets for ``registry``'s rooms."""

    def __init__(self, registry: RoomRegistry) -> None:
        self.registry = registry

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        registry = self.registry
        registry.sockets.add(ws)
        # set by the supervisor from the connection (or the TLS proxy in front of it); this
        # worker listens on loopback only, for the supervisor
        ip = request.headers.get(CLIENT_IP_HEADER, "")
        participant: Participant | None = None
        room: Room | None = None
        left = False  # said "leave" (or was cut off for flooding): gone at once, no place held
        try:
            try:
                first = await ws.receive_json(timeout=JOIN_TIMEOUT_S)
            except (TimeoutError, ValueError, TypeError):
                await refuse(ws, "invalid_request")
                return ws
            claims = await self._check_join(ws, first)
            if claims is None:
                return ws
            room = registry.rooms.setdefault(claims.meeting_key, Room(claims.meeting_key))
            stale = room.participants.get(claims.participant_id)
            if stale is not None:  # the same tab back (a network change) before or after its old socket dropped
                await registry.drop(room, stale)  # it comes back into its place (RoomRegistry.add)
            if len(room.participants) - (stale is not None) >= claims.max_participants:
                await refuse(ws, "meeting_full")
                return ws
            refused = registry.admits(room, claims.participant_id, claims.role)
            if refused is not None:
                await refuse(ws, refused)
                return ws
            if not room.participants and not room.waiting:
                room.lobby = claims.lobby  # the meeting's setting starts each session
            participant = Participant(claims.participant_id, claims.display_name, claims.role, ip, ws)
            refused = await registry.enter(room, participant)
            if refused is not None:
                participant = None
                await refuse(ws, refused)
                return ws
            left = await self._serve(ws, room, participant)
        finally:
            registry.sockets.discard(ws)
            if room is not None and participant is not None and room.participants.get(participant.id) is participant:
                if left:
                    await registry.remove(room, participant, reason="left")
                else:  # dropped without a leave: its place is held for a while (RESUME_GRACE_S)
                    await registry.drop(room, participant)
            elif room is not None:
                if participant is not None:
                    await registry.leave_lobby(room, participant)
                registry.discard_if_empty(room)  # a refused first joiner leaves no empty room behind
            if not ws.closed:
                await ws.close()
        return ws

    async def _serve(self, ws: web.WebSocketResponse, room: Room, participant: Participant) -> bool:
        """Messages until the socket ends: True if the participant left (or flooded), False if
        the socket just dropped."""
        bucket = TokenBuckets(MESSAGE_RATE_PER_S, MESSAGE_BURST, max_keys=1)
        dropped = 0
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            try:
                message: contract.ClientMessage | None = contract.parse_client(msg.json())
            except ValueError:  # not JSON, or not a message of the contract
                message = None
            if isinstance(message, contract.Leave):
                return True
            if not bucket.allow("", loop_time()):  # every frame counts, valid or not
                dropped += 1
                if dropped == 1 or dropped % 50 == 0:
                    await participant.send(contract.error("rate_limited"))
                if dropped >= MAX_DROPPED:
                    await ws.close(code=CLOSE_RATE)
                    return True
                continue
            if message is None:
                await participant.send(contract.error("invalid_request"))
                continue
            try:
                await self.registry.on_message(room, participant, message)
            except Exception:  # noqa: BLE001 - one bad message never drops the participant or the room
                log.exception("a %s message failed", message.type)
                await participant.send(contract.error("invalid_request"))
        return False

    async def _check_join(self, ws: web.WebSocketResponse, first: Any) -> tokens.JoinClaims | None:
        try:
            join = contract.parse_client(first)
        except ValueError:
            join = None
        if not isinstance(join, contract.Join):
            await refuse(ws, "invalid_request")
            return None
        try:
            claims = tokens.verify(self.registry.token_public_key, join.token, self.registry.mcu_id, datetime.now(UTC))
        except tokens.TokenError:
            await refuse(ws, "unauthenticated")
            return None
        if join.meeting_key != claims.meeting_key:
            await refuse(ws, "unauthenticated")
            return None
        return claims
