"""The benchmarks' aiortc publisher (bench/mcu_peer.py): a keyframe request marks one frame, not
a looped frame object for ever after."""

import asyncio
import fractions

from av.video.frame import PictureType

from bench.mcu_peer import LOOP_FRAMES, NoiseTrack


def test_a_keyframe_mark_does_not_stay_on_a_looped_frame() -> None:
    async def go() -> list[int]:
        track = NoiseTrack()

        async def at_once() -> tuple[int, fractions.Fraction]:  # not paced at 30 fps: a unit test
            return 0, fractions.Fraction(1, 90_000)

        track.next_timestamp = at_once  # type: ignore[method-assign]
        first = await track.recv()
        first.pict_type = PictureType.I  # what aiortc's encoder does for a requested keyframe
        for _ in range(LOOP_FRAMES - 1):
            await track.recv()
        again = await track.recv()  # the same object, a loop later
        assert again is first
        return [again.pict_type]

    track_types = asyncio.run(go())
    assert track_types == [PictureType.NONE]
