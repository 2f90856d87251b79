"""The pure parts of a room spanning workers (``mcu_vm.span``): where a newcomer's subscriptions
go, the pipe's datagrams (what a forged or cut one does), the control messages, and a mirror's
held state."""

from __future__ import annotations

import asyncio
import random

import pytest
from pydantic import ValidationError

from mcu_vm.span import CONTROL, HEADER, TOKEN_BYTES, Keyframe, MirrorPublisher, Subscribe, pack, place, unpack

TOKEN = b"\x01" * TOKEN_BYTES


def test_a_room_stays_home_until_it_holds_span_after_people_then_goes_where_fewest_are() -> None:
    assert place([0, 0], 0, 3) == 0
    assert place([2, 0], 0, 3) == 0
    assert place([3, 0], 0, 3) == 1  # the home is full: the other worker
    assert place([3, 1], 0, 3) == 1
    assert place([3, 3], 0, 3) == 0  # a tie: the home (no pipe needed for its subscribers)
    assert place([4, 3, 3], 0, 3) == 1
    assert place([1, 5, 0], 1, 3) == 2  # the home need not be worker 0
    assert place([7], 0, 3) == 0  # one worker: nowhere else


def test_a_piped_packet_comes_out_as_it_went_in() -> None:
    payload = bytes(range(200))
    data = pack(TOKEN, 7, 65535, 2**32 - 1, True, payload, True, 2, 3, 15, 127, False)
    assert unpack(TOKEN, data) == (7, 65535, 2**32 - 1, True, payload, True, 2, 3, 15, 127, False)
    held = pack(TOKEN, 1, 0, 0, False, b"\x00", False, -1, -1, 0, -1, True)
    assert unpack(TOKEN, held) == (1, 0, 0, False, b"\x00", False, -1, -1, 0, -1, True)


def test_a_datagram_without_the_links_token_or_out_of_shape_is_dropped() -> None:
    good = pack(TOKEN, 1, 5, 9, False, b"\x90\x80\x12\x34" + b"x" * 50, False, 0, 2, 15, -1, False)
    assert unpack(TOKEN, good) is not None
    assert unpack(b"\x02" * TOKEN_BYTES, good) is None  # another process's guess
    assert unpack(TOKEN, good[: HEADER.size]) is None  # no payload
    assert unpack(TOKEN, good[:5]) is None
    assert unpack(TOKEN, good + b"x" * 1500) is None  # bigger than any packet forwarded
    past_end = pack(TOKEN, 1, 5, 9, False, b"\x90\x80", False, 0, 1, 15, -1, False)
    assert unpack(TOKEN, past_end) is None  # a picture id beyond the payload
    odd_bits = pack(TOKEN, 1, 5, 9, False, b"x" * 20, False, 0, 2, 9, -1, False)
    assert unpack(TOKEN, odd_bits) is None
    assert unpack(TOKEN, pack(TOKEN, 1, 5, 9, False, b"x" * 20, False, 9, -1, 0, -1, False)) is None  # layer


def test_random_datagrams_never_raise() -> None:
    rng = random.Random(17)
    for _ in range(5000):
        size = rng.randrange(0, 1600)
        data = TOKEN + bytes(rng.randrange(256) for _ in range(size))
        got = unpack(TOKEN, data)
        if got is not None:
            payload, pid_at = got[4], got[7]
            assert 0 < len(payload) <= 1500 and (pid_at == -1 or pid_at < len(payload))


def test_control_messages_are_checked() -> None:
    msg = Subscribe(
        id=1,
        room="k" * 22,
        participant="p",
        publisher="q",
        source="camera",
        tracks=[{"pipe": 1, "kind": "video", "codec": {"mime": "video/VP8", "clock_rate": 90000}}],  # type: ignore[list-item]
    )
    assert CONTROL.validate_json(msg.model_dump_json()) == msg
    assert CONTROL.validate_json(Keyframe(pipe=3).model_dump_json()) == Keyframe(pipe=3)
    for bad in (
        '{"op": "drop_table"}',
        '{"op": "subscribe", "id": 1, "room": "", "participant": "p", "publisher": "q", "source": "camera", "tracks": []}',
        '{"op": "keyframe", "pipe": "x"}',
        "not json",
    ):
        with pytest.raises(ValidationError):
            CONTROL.validate_json(bad)


def test_a_mirror_resumes_its_subscribers_at_a_keyframe_after_a_hold() -> None:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    async def run() -> tuple[bool, bool, int]:
        asks: list[int] = []
        mirror = MirrorPublisher("video", RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000), lambda: asks.append(1))
        fwd = mirror.subscribe()
        fwd.gate.waiting_for_keyframe = False
        mirror.piped(1, 0, True, b"\x10\x00", False, -1, -1, 0, -1, True)  # the camera went off
        during = fwd.waiting_for_keyframe
        mirror.piped(2, 3000, True, b"\x10\x00", False, -1, -1, 0, -1, False)  # and on again
        after = fwd.waiting_for_keyframe
        mirror.request_keyframe()
        mirror.end()
        return during, after, len(asks)

    during, after, asks = asyncio.run(run())
    assert not during and after
    assert asks == 1  # its subscribers' requests go to the home, which coalesces them
