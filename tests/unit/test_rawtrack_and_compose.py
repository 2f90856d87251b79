"""The raw track format and the converter's composition, on synthetic recordings with real
codecs: timing across skewed publisher clocks, lip sync, gaps, a grid cell per person."""

from __future__ import annotations

import io
import random
from pathlib import Path

import av
import numpy as np
import pytest

from converter_job.compose import compose, grid, layout
from infra.media import Person, write_recording
from webmeeting.domain import rawtrack
from webmeeting.domain.converters import Converter, NoConverterAvailable, choose, parse


def _file(frames: list[rawtrack.Frame]) -> bytes:
    out = io.BytesIO()
    rawtrack.write_header(out, {"track_id": "t0", "kind": "video"})
    out.write(rawtrack.sender_report_record(rawtrack.SenderReport(123 << 32, 5)))
    for f in frames:
        out.write(rawtrack.frame_record(f))
    return out.getvalue()


FRAMES = [rawtrack.Frame(1_000 + i, 3000 * i, i == 0, bytes([i]) * (10 + i)) for i in range(5)]


def test_raw_track_round_trip() -> None:
    header, records = rawtrack.read(io.BytesIO(_file(FRAMES)))
    got = list(records)
    assert header == {"track_id": "t0", "kind": "video"}
    assert got == [rawtrack.SenderReport(123 << 32, 5), *FRAMES]


@pytest.mark.parametrize("cut", range(1, 40))
def test_a_file_cut_short_reads_up_to_its_last_complete_frame(cut: int) -> None:
    data = _file(FRAMES)
    _, records = rawtrack.read(io.BytesIO(data[:-cut]))
    got = [r for r in records if isinstance(r, rawtrack.Frame)]
    assert got == FRAMES[: len(got)] and len(got) >= 3


def test_a_damaged_frame_ends_the_readable_part() -> None:
    data = bytearray(_file(FRAMES))
    data[-20] ^= 0xFF  # inside the last frame's bytes: its CRC no longer matches
    _, records = rawtrack.read(io.BytesIO(bytes(data)))
    assert [r for r in records if isinstance(r, rawtrack.Frame)] == FRAMES[:4]


def test_not_a_raw_file() -> None:
    with pytest.raises(rawtrack.FormatError):
        rawtrack.read(io.BytesIO(b"RIFF...."))


def test_rtp_timestamps_unwrap() -> None:
    assert rawtrack.unwrap([2**32 - 3000, 2**32 - 10, 5, 3005, 2995]) == [
        2**32 - 3000,
        2**32 - 10,
        2**32 + 5,
        2**32 + 3005,
        2**32 + 2995,
    ]


def test_frame_times_from_the_sender_report_across_a_wrap() -> None:
    frames = [rawtrack.Frame(0, (2**32 - 90_000 + 3000 * i) & 0xFFFFFFFF, False, b"x") for i in range(60)]
    sr = rawtrack.SenderReport((1000 + rawtrack.NTP_EPOCH_OFFSET) << 32, 2**32 - 90_000)
    times = rawtrack.frame_times(frames, [sr], 90_000)
    assert times[0] == pytest.approx(1000.0) and times[59] == pytest.approx(1000.0 + 59 / 30)


# --- converter choice -----------------------------------------------------------------------------

CONVERTERS = parse("conv-eu@europe-west3,conv-eu2@europe-west3,conv-us@us-central1")


def test_a_converter_in_the_mcus_region() -> None:
    for seed in range(20):
        assert choose(CONVERTERS, "europe-west3", rng=random.Random(seed)).region == "europe-west3"


def test_none_in_the_region_means_a_random_one() -> None:
    picked = {choose(CONVERTERS, "asia-east1", rng=random.Random(seed)).id for seed in range(40)}
    assert picked == {"conv-eu", "conv-eu2", "conv-us"}


def test_after_a_failure_the_admins_fallback_else_another_one() -> None:
    assert choose(CONVERTERS, "europe-west3", failed="conv-eu", fallback="conv-us").id == "conv-us"
    for seed in range(20):
        assert choose(CONVERTERS, "europe-west3", failed="conv-eu", rng=random.Random(seed)).id == "conv-eu2"
    only = [Converter("solo", "europe-west3")]
    assert choose(only, "europe-west3", failed="solo").id == "solo"  # nothing else: the same one again


def test_unavailable_converters_are_skipped() -> None:
    convs = [Converter("a", "europe-west3", available=False), Converter("b", "us-central1")]
    assert choose(convs, "europe-west3").id == "b"
    with pytest.raises(NoConverterAvailable):
        choose([Converter("a", "x", available=False)], "x")
    with pytest.raises(ValueError, match="id@region"):
        parse("just-an-id")


def test_grid_cells_tile_the_picture() -> None:
    assert grid(1) == [(0, 0, 1280, 720)]
    assert grid(2) == [(0, 0, 640, 720), (640, 0, 640, 720)]
    assert len(grid(5)) == 5 and all(w > 0 and h > 0 and x % 2 == 0 and y % 2 == 0 for x, y, w, h in grid(5))


def test_a_shared_screen_is_the_main_cell_and_the_people_a_column() -> None:
    assert layout(2, False) == (None, grid(2))
    screen, people = layout(3, True)
    assert screen == (0, 0, 960, 720)
    assert [c[0] for c in people] == [960] * 3 and all(w == 320 and h == 180 for _, _, w, h in people)
    assert all(a[1] + a[3] <= b[1] for a, b in zip(people, people[1:], strict=False))  # no overlap
    _, many = layout(8, True)
    assert many[-1][1] + many[-1][3] <= 720  # they all fit the column
    assert layout(0, True) == ((0, 0, 1280, 720), [])


# --- composition ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rec")
    people = [
        Person("alice-000001", 90, 90, 160, 440, clock_skew_s=5.0, flash_at=2.0),
        Person(
            "bob-00000001", 150, 160, 90, 660, clock_skew_s=-3.0, network_delay_s=0.06, joins_at=1.0, leaves_at=3.5, flash_at=2.5
        ),
    ]
    manifest = write_recording(folder, people, 5.0)
    out = folder / "out.mp4"
    compose(manifest, {t["track_id"]: folder / t["file"] for t in manifest["tracks"]}, out)
    return out


def _video(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="gray")) for f in c.decode(video=0)]


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])


def test_mp4_is_h264_and_aac_with_the_recorded_duration(composed: Path) -> None:
    with av.open(str(composed)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and c.streams.audio[0].codec_context.name == "aac"
        assert (c.streams.video[0].width, c.streams.video[0].height) == (1280, 720)
        assert float(c.duration / 1e6) == pytest.approx(5.0, abs=0.1)
    head = composed.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)  # faststart: index first


def _cells(frame: np.ndarray) -> tuple[float, float]:
    return float(frame[300:420, 160:480].mean()), float(frame[300:420, 800:1120].mean())


def test_each_person_has_a_cell_black_while_they_are_absent(composed: Path) -> None:
    frames = dict(_video(composed))

    def at(t: float) -> tuple[float, float]:
        return _cells(frames[min(frames, key=lambda k: abs(k - t))])

    assert at(0.5)[0] > 50 and at(0.5)[1] < 20  # Alice there, Bob not yet (he joins at 1.0)
    assert at(1.7)[0] > 50 and at(1.7)[1] > 100  # both
    assert at(4.6)[1] < 20  # Bob left at 3.5: black after the hold
    assert at(4.6)[0] > 50


def test_lip_sync_across_skewed_publisher_clocks(composed: Path) -> None:
    pcm = np.abs(_audio(composed))
    window = 480  # 10 ms envelopes
    env = np.array([pcm[i : i + window].max() for i in range(0, len(pcm) - window, window)])
    loud = np.flatnonzero(env > 0.45)
    bursts = [loud[0]] + [b for a, b in zip(loud, loud[1:], strict=False) if b - a > 10]
    audio_flashes = [b * window / 48_000 for b in bursts]
    video = _video(composed)
    alice = next(t for t, f in video if _cells(f)[0] > 200)
    bob = next(t for t, f in video if _cells(f)[1] > 200)
    assert alice == pytest.approx(2.0, abs=0.07) and bob == pytest.approx(2.5, abs=0.1)
    assert len(audio_flashes) == 2
    assert abs(audio_flashes[0] - alice) < 0.05 and abs(audio_flashes[1] - bob) < 0.05  # lip sync: within 50 ms


def test_a_shared_screen_fills_the_main_cell_while_it_is_shared(tmp_path: Path) -> None:
    camera = Person("alice-000001", 90, 128, 128, 440)
    screen = Person("alice-000001", 220, 128, 128, 440, screen=True, joins_at=1.0, leaves_at=2.5)
    out, result = _compose(tmp_path, [camera, screen], 4.0)
    assert not result.remuxed and result.cells == 2  # type: ignore[attr-defined]
    frames = dict(_video(out))

    def at(t: float) -> np.ndarray:
        return frames[min(frames, key=lambda k: abs(k - t))]

    assert at(0.5)[200:520, 200:1080].mean() == pytest.approx(90, abs=15)  # only Alice's camera: all hers
    during = at(2.0)
    assert during[100:620, 100:860].mean() == pytest.approx(220, abs=15)  # the screen, large
    assert during[300:420, 980:1260].mean() == pytest.approx(90, abs=15)  # Alice, small on the right
    assert at(3.8)[200:520, 200:1080].mean() == pytest.approx(90, abs=15)  # the share ended: her camera again


# --- the remux path -------------------------------------------------------------------------------


def _compose(tmp: Path, people: list[Person], seconds: float) -> tuple[Path, object]:
    manifest = write_recording(tmp, people, seconds)
    out = tmp / "out.mp4"
    result = compose(manifest, {t["track_id"]: tmp / t["file"] for t in manifest["tracks"]}, out)
    return out, result


def test_one_continuous_h264_speaker_is_remuxed_in_sync(tmp_path: Path) -> None:
    out, result = _compose(
        tmp_path, [Person("alice-000001", 120, 100, 150, 440, video_codec="h264", flash_at=1.5, clock_skew_s=2.0)], 3.0
    )
    assert result.remuxed  # type: ignore[attr-defined]
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        assert video.codec_context.name == "h264" and (video.width, video.height) == (640, 360)
        assert float(c.duration / 1e6) == pytest.approx(3.0, abs=0.1)
        white = next(float(f.pts * f.time_base) for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 180)
    pcm = np.abs(_audio(out))
    loud = int(np.flatnonzero(pcm > 0.45)[0]) / 48_000
    assert white == pytest.approx(1.5, abs=0.07) and abs(white - loud) < 0.05


@pytest.mark.parametrize(
    "people",
    [
        [Person("alice-000001", 120, 100, 150, 440, video_codec="h264", joins_at=1.5)],  # starts late: black first
        [Person("alice-000001", 120, 100, 150, 440, video_codec="vp8")],  # VP8 goes into H.264: encoded
        [
            Person("alice-000001", 120, 100, 150, 440, video_codec="h264"),
            Person("bob-00000001", 170, 150, 100, 660, video_codec="h264"),
        ],
    ],
    ids=["late-start", "vp8", "two-people"],
)
def test_anything_else_is_composed(tmp_path: Path, people: list[Person]) -> None:
    _, result = _compose(tmp_path, people, 3.0)
    assert not result.remuxed  # type: ignore[attr-defined]
