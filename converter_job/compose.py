"""Composing one MP4 from a recording's raw tracks (PyAV, numpy).

- Every frame is placed by its capture time: RTP timestamps mapped through the publisher's RTCP
  sender reports, then moved onto the MCU's clock by the smallest arrival delay of that
  publisher (``align``), so one person's audio and video stay in sync.
- Video: a grid with one cell per participant who sent video, over the whole recording; a
  cell shows the participant's latest frame, black when they sent nothing for ``HOLD_S``
  (a gap, a drop, not yet joined). While a screen is shared it is the main cell (``layout``:
  the screen large on the left, the people in a column on the right). H.264 (libx264), yuv420p.
- Audio: every audio track decoded, resampled to 48 kHz mono and placed at its time; the tracks
  summed with clipping; silence where nobody sent anything. AAC.
- MP4 with ``+faststart`` (the index first: plays while downloading).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from webmeeting.domain import rawtrack

log = logging.getLogger("converter.compose")

WIDTH, HEIGHT, FPS = 1280, 720, 30
AUDIO_RATE = 48_000
AAC_FRAME = 1024
SR_AGREEMENT_S = 0.5  # a publisher's tracks whose clocks disagree more than this are placed one by one
HOLD_S = 1.0  # a participant's last picture stays this long, then the cell goes black
Y_BLACK, UV_NEUTRAL = 16, 128
DECODERS = {"vp8": "vp8", "h264": "h264", "opus": "libopus"}


@dataclass
class Track:
    header: dict[str, Any]
    frames: list[rawtrack.Frame]
    reports: list[rawtrack.SenderReport]
    times: list[float] = field(default_factory=list)  # aligned capture times (Unix seconds, MCU clock)

    @property
    def kind(self) -> str:
        return str(self.header["kind"])

    @property
    def participant(self) -> str:
        return str(self.header["participant_id"])

    @property
    def screen(self) -> bool:
        return self.header.get("source") == "screen"


def load(path: Path) -> Track:
    with open(path, "rb") as fh:
        header, records = rawtrack.read(fh)
        frames: list[rawtrack.Frame] = []
        reports: list[rawtrack.SenderReport] = []
        for r in records:
            (frames if isinstance(r, rawtrack.Frame) else reports).append(r)  # type: ignore[arg-type]
    return Track(header, frames, reports)


def align(tracks: list[Track]) -> None:
    """Capture times on the MCU's clock. Per publisher, the sender reports' clock (shared by the
    publisher's audio and video: lip sync) is shifted by the publisher's smallest arrival delay.
    Should a publisher's tracks disagree about that clock (by more than ``SR_AGREEMENT_S``), each
    track is placed by its own smallest delay instead (still in sync to within network jitter)."""
    by_person: dict[str, list[Track]] = {}
    for t in tracks:
        t.times = rawtrack.frame_times(t.frames, t.reports, int(t.header["clock_rate"]))
        by_person.setdefault(t.participant, []).append(t)
    for person, person_tracks in by_person.items():
        offsets = {
            id(t): min(f.arrival_ns / 1e9 - at for f, at in zip(t.frames, t.times, strict=True))
            for t in person_tracks
            if t.frames
        }
        if not offsets:
            continue
        agree = max(offsets.values()) - min(offsets.values()) <= SR_AGREEMENT_S
        if not agree:
            log.warning(
                "participant %s: sender reports disagree by %.1f s; tracks placed by arrival",
                person[:8],
                max(offsets.values()) - min(offsets.values()),
            )
        common = min(offsets.values())
        for t in person_tracks:
            if t.frames:
                shift = common if agree else offsets[id(t)]
                t.times = [at + shift for at in t.times]


Cell = tuple[int, int, int, int]  # x, y, w, h


def grid(n: int, width: int = WIDTH, height: int = HEIGHT) -> list[Cell]:
    """Cells (x, y, w, h), even-aligned, for ``n`` participants: as square a grid as fits."""
    if n <= 0:
        return []
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cw, ch = (width // cols) & ~1, (height // rows) & ~1
    return [((i % cols) * cw, (i // cols) * ch, cw, ch) for i in range(n)]


def layout(n: int, screen: bool, width: int = WIDTH, height: int = HEIGHT) -> tuple[Cell | None, list[Cell]]:
    """(the screen's cell, the people's cells): without a shared screen the people's grid; with
    one, the screen in the left three quarters and the people in a column on the right."""
    if not screen:
        return None, grid(n, width, height)
    main_w = (width * 3 // 4) & ~1
    side_w = width - main_w
    if n == 0:
        return (0, 0, width, height), []
    ch = min(height // n, (side_w * 9 // 16)) & ~1  # 16:9 cells, as many as fit the column
    top = ((height - ch * n) // 2) & ~1
    return (0, 0, main_w, height), [(main_w, top + i * ch, side_w, ch) for i in range(n)]


def _fit(src_w: int, src_h: int, cw: int, ch: int) -> tuple[int, int, int, int]:
    """The picture's size inside a cell, aspect kept, centred: (dx, dy, w, h), all even."""
    scale = min(cw / src_w, ch / src_h)
    w, h = max(2, int(src_w * scale) & ~1), max(2, int(src_h * scale) & ~1)
    return ((cw - w) // 2) & ~1, ((ch - h) // 2) & ~1, w, h


class VideoCell:
    """One participant's pictures over time (their video tracks in order, or every shared
    screen), decoded on demand and scaled to the cell they are painted in."""

    def __init__(self, tracks: list[Track]) -> None:
        self.queue: deque[tuple[float, rawtrack.Frame, Any]] = deque()
        items = []
        for t in tracks:
            decoder = av.CodecContext.create(DECODERS[t.header["codec"]], "r")
            items += [(at, f, decoder) for f, at in zip(t.frames, t.times, strict=True)]
        items.sort(key=lambda x: x[0])
        self.queue.extend(items)
        self.current: av.VideoFrame | None = None
        self._scaled_for: tuple[int, int] | None = None  # the cell size of ``_planes``
        self._planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.current_at = -math.inf
        self.decoded = 0
        self.errors = 0

    def advance(self, until: float) -> None:
        while self.queue and self.queue[0][0] <= until:
            at, frame, decoder = self.queue.popleft()
            try:
                pictures = decoder.decode(av.Packet(frame.data))
            except av.FFmpegError:
                self.errors += 1  # a damaged frame: keep the last good picture
                continue
            for picture in pictures:
                self.current, self._planes = picture, None
                self.current_at = at
                self.decoded += 1

    def showing(self, at: float) -> bool:
        """Whether there is a picture to show at ``at`` (else the cell is black)."""
        return self.current is not None and at - self.current_at <= HOLD_S

    def _scaled(self, picture: av.VideoFrame, cw: int, ch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dx, dy, w, h = _fit(picture.width, picture.height, cw, ch)
        yuv = picture.reformat(width=w, height=h, format="yuv420p").to_ndarray()
        y = yuv[:h]
        u = yuv[h : h + h // 4].reshape(h // 2, w // 2)
        v = yuv[h + h // 4 :].reshape(h // 2, w // 2)
        return y, u, v

    def paint(self, planes: tuple[np.ndarray, np.ndarray, np.ndarray], at: float, cell: Cell) -> None:
        if self.current is None or not self.showing(at):
            return  # black: nothing from them just now
        x, y0, cw, ch = cell
        if self._planes is None or self._scaled_for != (cw, ch):
            self._planes, self._scaled_for = self._scaled(self.current, cw, ch), (cw, ch)
        py, pu, pv = self._planes
        dx, dy = ((cw - py.shape[1]) // 2) & ~1, ((ch - py.shape[0]) // 2) & ~1  # centred in its cell
        Y, U, V = planes
        Y[y0 + dy : y0 + dy + py.shape[0], x + dx : x + dx + py.shape[1]] = py
        U[(y0 + dy) // 2 : (y0 + dy) // 2 + pu.shape[0], (x + dx) // 2 : (x + dx) // 2 + pu.shape[1]] = pu
        V[(y0 + dy) // 2 : (y0 + dy) // 2 + pv.shape[0], (x + dx) // 2 : (x + dx) // 2 + pv.shape[1]] = pv


class AudioTrackCursor:
    """One audio track as 48 kHz mono samples at their positions, decoded as the mix advances."""

    def __init__(self, track: Track, t0: float) -> None:
        self.segments: deque[tuple[int, np.ndarray]] = deque()
        self._source = self._decode(track, t0)
        self._done = False

    @staticmethod
    def _decode(track: Track, t0: float) -> Iterator[tuple[int, np.ndarray]]:
        decoder = av.CodecContext.create(DECODERS[track.header["codec"]], "r")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        for frame, at in zip(track.frames, track.times, strict=True):
            try:
                decoded = decoder.decode(av.Packet(frame.data))
            except av.FFmpegError:
                continue
            start = round((at - t0) * AUDIO_RATE)
            for d in decoded:
                for r in resampler.resample(d):
                    samples = r.to_ndarray().reshape(-1).astype(np.int32)
                    yield start, samples
                    start += samples.shape[0]

    def add_into(self, mix: np.ndarray, begin: int) -> None:
        end = begin + mix.shape[0]
        while not self._done and (not self.segments or self.segments[-1][0] < end):
            try:
                self.segments.append(next(self._source))
            except StopIteration:
                self._done = True
        while self.segments and self.segments[0][0] + self.segments[0][1].shape[0] <= begin:
            self.segments.popleft()
        covered = np.zeros(mix.shape[0], dtype=bool)  # a track plays one thing at a time
        for start, samples in self.segments:
            if start >= end:
                break
            lo, hi = max(start, begin), min(start + samples.shape[0], end)
            if lo >= hi:
                continue
            part = slice(lo - begin, hi - begin)
            fresh = ~covered[part]
            mix[part][fresh] += samples[lo - start : hi - start][fresh]
            covered[part] = True


@dataclass
class Result:
    duration_s: float
    video_frames: int
    audio_samples: int
    cells: int
    remuxed: bool = False


def remuxable(video_people: dict[str, list[Track]], t0: float, t1: float) -> Track | None:
    """The one H.264 track whose packets can go into the MP4 as they are (no decoding, no
    encoding): a single person's video, continuous from start to end (a gap or a late start
    must show black, which only re-encoding can)."""
    if len(video_people) != 1:
        return None
    (tracks,) = video_people.values()
    if len(tracks) != 1 or tracks[0].header["codec"] != "h264" or not tracks[0].frames[0].keyframe:
        return None
    times = tracks[0].times
    if times[0] - t0 > HOLD_S or t1 - times[-1] > HOLD_S or any(b - a > HOLD_S for a, b in zip(times, times[1:], strict=False)):
        return None
    return tracks[0]


def _copy_h264(container: Any, track: Track, t0: float) -> tuple[Any, list[av.Packet]]:
    """A stream for ``track``'s packets and the packets, timed from ``t0`` (90 kHz)."""
    size = av.CodecContext.create("h264", "r").decode(av.Packet(track.frames[0].data))
    width, height = (size[0].width, size[0].height) if size else (640, 360)
    stream = container.add_mux_stream("h264", rate=FPS, width=width, height=height)
    stream.time_base = Fraction(1, 90_000)
    packets = []
    last = -1
    for frame, at in zip(track.frames, track.times, strict=True):
        pts = max(last + 1, round((at - t0) * 90_000))
        last = pts
        packet = av.Packet(frame.data)
        packet.stream = stream
        packet.time_base = stream.time_base
        packet.pts = packet.dts = pts
        packet.is_keyframe = frame.keyframe
        packets.append(packet)
    return stream, packets


def compose(
    manifest: dict[str, Any],
    track_files: dict[str, Path],
    out: Path,
    *,
    progress: Callable[[float], None] | None = None,
    preset: str = "veryfast",
    crf: int = 23,
) -> Result:
    """Write the MP4 for ``manifest`` (its tracks' raw files in ``track_files``) to ``out``."""
    from datetime import datetime

    t0 = datetime.fromisoformat(manifest["started_at"].replace("Z", "+00:00")).timestamp()
    t1 = datetime.fromisoformat(manifest["stopped_at"].replace("Z", "+00:00")).timestamp()
    tracks = [load(track_files[t["track_id"]]) for t in manifest["tracks"]]
    align(tracks)
    duration = max(0.0, t1 - t0)
    video_people: dict[str, list[Track]] = {}
    screens = [t for t in tracks if t.kind == "video" and t.frames and t.screen]
    for t in tracks:
        if t.kind == "video" and t.frames and not t.screen:
            video_people.setdefault(t.participant, []).append(t)
    order = sorted(video_people, key=lambda p: min(t.times[0] for t in video_people[p]))
    cells = [VideoCell(video_people[p]) for p in order]
    screen = VideoCell(screens) if screens else None  # one share at a time: every share in one cell
    layouts = {shared: layout(len(cells), shared) for shared in (False, True)}
    for t in tracks:
        if t.frames:
            log.info(
                "track %s (%s %s): %d frames, %d sender reports, %.2f..%.2f s",
                t.header["track_id"],
                t.kind,
                t.header["codec"],
                len(t.frames),
                len(t.reports),
                t.times[0] - t0,
                t.times[-1] - t0,
            )
    audio = [AudioTrackCursor(t, t0) for t in tracks if t.kind == "audio" and t.frames]

    container = av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"})
    copy = None if screens else remuxable(video_people, t0, t1)
    if copy is not None:
        return _remux(container, copy, audio, t0, duration)
    vstream = container.add_stream("libx264", rate=FPS, options={"preset": preset, "crf": str(crf)})
    vstream.width, vstream.height, vstream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    vstream.codec_context.gop_size = 2 * FPS
    astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    total_frames = max(1, round(duration * FPS))
    total_samples = round(duration * AUDIO_RATE)
    audio_pos = 0
    canvas = np.empty((HEIGHT * 3 // 2, WIDTH), np.uint8)  # yuv420p as one block; the planes are views
    Y = canvas[:HEIGHT]
    U = canvas[HEIGHT : HEIGHT + HEIGHT // 4].reshape(HEIGHT // 2, WIDTH // 2)
    V = canvas[HEIGHT + HEIGHT // 4 :].reshape(HEIGHT // 2, WIDTH // 2)
    reported = -1
    for k in range(total_frames):
        at = t0 + k / FPS
        Y.fill(Y_BLACK)
        U.fill(UV_NEUTRAL)
        V.fill(UV_NEUTRAL)
        for cell in cells:
            cell.advance(at)
        if screen is not None:
            screen.advance(at)
        screen_cell, people_cells = layouts[screen is not None and screen.showing(at)]
        if screen is not None and screen_cell is not None:
            screen.paint((Y, U, V), at, screen_cell)
        for cell, where in zip(cells, people_cells, strict=True):
            cell.paint((Y, U, V), at, where)
        frame = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
        frame.pts = k
        for packet in vstream.encode(frame):
            container.mux(packet)
        until = min(total_samples, round((k + 1) / FPS * AUDIO_RATE))
        while audio_pos + AAC_FRAME <= until or (k == total_frames - 1 and audio_pos < total_samples):
            n = min(AAC_FRAME, total_samples - audio_pos)
            for packet in astream.encode(_mix_chunk(audio, audio_pos, n)):
                container.mux(packet)
            audio_pos += n
        if progress and (pct := int(100 * (k + 1) / total_frames)) // 10 != reported // 10:
            reported = pct
            progress(pct)
    for packet in vstream.encode(None):
        container.mux(packet)
    for packet in astream.encode(None):
        container.mux(packet)
    container.close()
    for name, cell in [*zip(order, cells, strict=True), *([("screen", screen)] if screen else [])]:
        log.info("cell %s: %d pictures decoded, %d damaged frames skipped", name[:6], cell.decoded, cell.errors)
    return Result(duration, total_frames, audio_pos, len(cells) + (screen is not None))


def _mix_chunk(audio: list[AudioTrackCursor], pos: int, n: int) -> av.AudioFrame:
    mix = np.zeros(n, dtype=np.int32)
    for a in audio:
        a.add_into(mix, pos)
    pcm = np.clip(mix, -32768, 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts = pos
    return frame


def _remux(container: Any, track: Track, audio: list[AudioTrackCursor], t0: float, duration: float) -> Result:
    """The remux path: the H.264 packets copied, the audio mixed and encoded, interleaved."""
    vstream, packets = _copy_h264(container, track, t0)
    astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    total_samples = round(duration * AUDIO_RATE)
    pos = 0
    for packet in packets:
        until = min(total_samples, round(float(packet.pts) / 90_000 * AUDIO_RATE))
        while pos + AAC_FRAME <= until:
            for encoded in astream.encode(_mix_chunk(audio, pos, AAC_FRAME)):
                container.mux(encoded)
            pos += AAC_FRAME
        container.mux(packet)
    while pos < total_samples:
        n = min(AAC_FRAME, total_samples - pos)
        for encoded in astream.encode(_mix_chunk(audio, pos, n)):
            container.mux(encoded)
        pos += n
    for encoded in astream.encode(None):
        container.mux(encoded)
    container.close()
    log.info("remuxed %d H.264 packets (no video encoding)", len(packets))
    return Result(duration, len(packets), pos, 1, remuxed=True)
