"""Per-subscriber bandwidth allocation (mcu_vm/adaptation.py) and the forwarder's layer gate."""

import asyncio

import av
import pytest

from mcu_vm import adaptation
from mcu_vm.adaptation import AUDIO_BPS, HEADROOM, PAUSED, Holder, Offer, allocate
from mcu_vm.passthrough import MAX_LAYER, ForwardTrack, vp8_temporal_layer

L1T3 = [600_000.0, 900_000.0, 1_500_000.0]  # a 1.5 Mbit/s publisher: base, base + 1, all


def test_enough_for_everyone_gets_everything() -> None:
    offers = [Offer(k, -i, L1T3) for i, k in enumerate("abcd")]
    assert allocate(8_000_000, offers) == dict.fromkeys("abcd", 2)


def test_a_thin_link_gets_fewer_layers_then_pauses_the_least_important() -> None:
    offers = [Offer(k, -i, L1T3) for i, k in enumerate("abcd")]  # a first: the most important
    budget = 1_000_000
    got = allocate(budget, offers)
    assert got == {"a": 0, "b": PAUSED, "c": PAUSED, "d": PAUSED}
    spent = sum(L1T3[layer] for layer in got.values() if layer != PAUSED) + 4 * AUDIO_BPS
    assert spent <= budget
    assert allocate(2_700_000, offers) == {"a": 2, "b": 0, "c": PAUSED, "d": PAUSED}


def test_a_shared_screen_goes_first_and_the_first_stream_always_moves() -> None:
    screen = Offer("screen", 1e12, L1T3)
    person = Offer("ada", -1, L1T3)
    assert allocate(1_000_000, [person, screen]) == {"screen": 0, "ada": PAUSED}
    assert allocate(100_000, [person]) == {"ada": 0}  # too little for anything: the base layer still goes


def test_a_stream_without_layers_is_all_or_nothing() -> None:
    assert allocate(3_000_000, [Offer("a", 1, [1_500_000.0]), Offer("b", 0, [1_500_000.0])]) == {"a": 0, "b": PAUSED}
    assert HEADROOM < 1


def test_full_until_congested_then_down_at_once_and_up_one_layer_per_calm_period() -> None:
    hold = Holder()
    full = {"a": 2, "b": 2}  # a is the more important
    assert hold.apply(None, 0.0, full) == {"a": 2, "b": 2}  # no congestion: everything
    assert hold.apply({"a": 0, "b": PAUSED}, 1.0, full) == {"a": 0, "b": PAUSED}  # congested: down at once
    assert hold.apply(None, 1.5, full) == {"a": 0, "b": PAUSED}  # calm starts
    assert hold.apply(None, 1.5 + adaptation.UP_AFTER_S - 0.1, full) == {"a": 0, "b": PAUSED}
    assert hold.apply(None, 1.5 + adaptation.UP_AFTER_S, full) == {"a": 1, "b": PAUSED}  # the first stream, one layer
    t = 1.5 + adaptation.UP_AFTER_S
    assert hold.apply(None, t + adaptation.UP_AFTER_S, full) == {"a": 2, "b": PAUSED}
    assert hold.apply(None, t + 2 * adaptation.UP_AFTER_S, full) == {"a": 2, "b": 0}  # then b resumes
    assert hold.apply({"a": 2, "b": PAUSED}, 20.0, full) == {"a": 2, "b": PAUSED}
    assert hold.apply({"a": 2}, 21.0, {"a": 2}) == {"a": 2}  # a stream that went is forgotten


def test_congestion_is_loss_or_a_falling_estimate_never_a_slow_start() -> None:
    from mcu_vm.adaptation import budget, congested

    assert not congested(None, None, 1_000_000)  # nothing reported yet
    assert not congested(800_000, 0.0, 1_000_000)  # an estimate still rising (browsers start low)
    assert congested(600_000, 0.0, 1_000_000)  # fell well below what is sent
    assert congested(2_000_000, 0.08, 1_000_000)  # reports of loss
    assert budget(600_000, 0.0, 1_000_000) == 600_000
    assert budget(2_000_000, 0.25, 1_000_000) == 750_000  # what got through
    assert budget(None, 0.5, 1_000_000) == 500_000


def test_vp8_descriptor_temporal_layer() -> None:
    # X=1; I=1 (15-bit picture id), L=1, T=1: TL0PICIDX, then TID in the top bits
    assert vp8_temporal_layer(bytes([0x90, 0xE0, 0x80, 0x01, 0x05, 0b10_1_00000, 0x00])) == 2
    assert vp8_temporal_layer(bytes([0x90, 0xA0, 0x12, 0b01_0_00000, 0x00])) == 1  # 7-bit picture id, no L
    assert vp8_temporal_layer(bytes([0x90, 0x80, 0x12, 0x00])) is None  # no T: no layers
    assert vp8_temporal_layer(bytes([0x10, 0x00])) is None  # no extensions at all


def _packet(key: bool) -> av.Packet:
    p = av.Packet(b"\x00" if key else b"\x01")
    p.is_keyframe = key
    return p


def test_the_gate_drops_higher_layers_goes_up_at_a_base_frame_and_resumes_at_a_keyframe() -> None:
    async def go() -> list[tuple[bool, int]]:
        asked: list[int] = []
        fwd = ForwardTrack("video", lambda: asked.append(1))
        pattern = [0, 2, 1, 2]  # L1T3
        fwd.push(_packet(True), 0)
        fwd.set_layer(0)
        for layer in pattern * 2:
            fwd.push(_packet(False), layer)
        base_only = fwd._queue.qsize()
        fwd.set_layer(MAX_LAYER)
        fwd.push(_packet(False), 2)  # not at a base frame: still held back
        fwd.push(_packet(False), 0)  # the switch
        fwd.push(_packet(False), 2)
        after_up = fwd._queue.qsize()
        fwd.set_layer(PAUSED)
        fwd.push(_packet(False), 0)
        paused = fwd._queue.qsize()
        fwd.set_layer(0)  # resuming asks for a keyframe, and waits for it
        fwd.push(_packet(False), 0)
        waiting = fwd._queue.qsize()
        fwd.push(_packet(True), 0)
        fwd.stop()
        return [(base_only == 1 + 2, base_only), (after_up == base_only + 2, after_up), (paused == after_up, paused),
                (waiting == paused, waiting), (fwd._queue.qsize() >= paused + 1, len(asked))]  # fmt: skip

    results = asyncio.run(go())
    assert all(ok for ok, _ in results), results


@pytest.mark.parametrize("kind", ["audio"])
def test_audio_has_no_layers(kind: str) -> None:
    fwd = ForwardTrack(kind, lambda: None)
    fwd.set_layer(PAUSED)
    assert fwd.target_layer == MAX_LAYER
