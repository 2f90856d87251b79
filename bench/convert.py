"""Conversion speed, side by side on the same input and settings: the converter job's composer
(``converter_job/compose.py``) against the ffmpeg command line (Debian's ffmpeg).

Input: a synthetic two-person recording (``infra/media.py``: VP8 640x360 30 fps + Opus per
person, really encoded) of ``--seconds`` seconds. The converter reads the raw track files; the
ffmpeg CLI reads the same encoded frames remuxed (no re-encoding) into one Matroska file per
person. Both produce the same output: a 1280x720 30 fps side-by-side grid, H.264 (libx264
veryfast, CRF 23) + AAC mono 48 kHz, MP4 with faststart. Measured: CPU seconds (user + system,
all threads) of each run in a process of its own; media seconds per CPU second.

    .venv/bin/python bench/convert.py [--seconds 60] [--runs 3] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from bench.report import write_section  # noqa: E402
from infra.media import Person, write_recording  # noqa: E402
from webmeeting.domain import rawtrack  # noqa: E402

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"  # Debian's ffmpeg (make system)
OPUS_HEAD = b"OpusHead" + bytes([1, 1]) + (312).to_bytes(2, "little") + (48000).to_bytes(4, "little") + bytes([0, 0, 0])


def to_mkv(manifest: dict[str, Any], folder: Path, person: str, out: Path) -> None:
    """One person's raw tracks as a Matroska file, packets copied as they are."""
    container = av.open(str(out), "w", format="matroska")
    streams = []
    for track in manifest["tracks"]:
        if track["participant_id"] != person:
            continue
        with open(folder / track["file"], "rb") as fh:
            _, records = rawtrack.read(fh)
            frames = [r for r in records if isinstance(r, rawtrack.Frame)]
        if track["kind"] == "video":
            stream = container.add_mux_stream("vp8" if track["codec"] == "vp8" else "h264", rate=30, width=640, height=360)
        else:
            stream = container.add_stream("libopus", rate=48000)
            stream.codec_context.extradata = OPUS_HEAD
        stream.time_base = Fraction(1, track["clock_rate"])
        streams.append((stream, track, frames))
    for stream, track, frames in streams:
        first = frames[0].rtp_ts
        for f in frames:
            packet = av.Packet(f.data)
            packet.stream = stream
            packet.pts = packet.dts = (f.rtp_ts - first) * stream.time_base.denominator // track["clock_rate"]
            packet.time_base = stream.time_base
            packet.is_keyframe = f.keyframe
            container.mux(packet)
    container.close()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    cpu, wall = children_cpu(), time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return children_cpu() - cpu, time.monotonic() - wall


def duration_of(path: Path) -> float:
    with av.open(str(path)) as c:
        return float(c.duration / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wm-bench-convert-"))
    try:
        people = [Person("alice-000001", 100, 100, 160, 440), Person("bob-00000001", 160, 160, 100, 660)]
        print(f"encoding a {args.seconds:.0f} s two-person input…", flush=True)
        manifest = write_recording(work / "raw", people, args.seconds)
        for p in people:
            to_mkv(manifest, work / "raw", p.participant_id, work / f"{p.participant_id}.mkv")
        (work / "manifest.json").write_text(json.dumps(manifest))
        converter = [
            sys.executable,
            "-c",
            "import json, sys; from pathlib import Path; from converter_job.compose import compose;"
            "m = json.loads(Path(sys.argv[1]).read_text()); d = Path(sys.argv[2]);"
            "compose(m, {t['track_id']: d / t['file'] for t in m['tracks']}, Path(sys.argv[3]))",
            str(work / "manifest.json"),
            str(work / "raw"),
            str(work / "converter.mp4"),
        ]
        cell = "scale=640:720:force_original_aspect_ratio=decrease,pad=640:720:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1"
        ffmpeg = [
            FFMPEG, "-y", "-loglevel", "error",
            "-i", str(work / "alice-000001.mkv"), "-i", str(work / "bob-00000001.mkv"),
            "-filter_complex",
            f"[0:v]{cell}[a];[1:v]{cell}[b];[a][b]hstack=inputs=2,fps=30,format=yuv420p[v];"
            "[0:a][1:a]amix=inputs=2:normalize=0,aresample=48000,aformat=channel_layouts=mono[m]",
            "-map", "[v]", "-map", "[m]",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60",
            "-c:a", "aac", "-movflags", "+faststart",
            str(work / "ffmpeg.mp4"),
        ]  # fmt: skip
        # the remux path: one person sending H.264 throughout: video copied, audio encoded
        print("encoding a one-person H.264 input…", flush=True)
        solo = [Person("carol-000001", 120, 100, 150, 440, video_codec="h264")]
        remux_manifest = write_recording(work / "raw264", solo, args.seconds)
        to_mkv(remux_manifest, work / "raw264", "carol-000001", work / "carol.mkv")
        (work / "manifest264.json").write_text(json.dumps(remux_manifest))
        converter_remux = [
            *converter[:3],
            str(work / "manifest264.json"),
            str(work / "raw264"),
            str(work / "converter_remux.mp4"),
        ]
        ffmpeg_remux = [
            FFMPEG, "-y", "-loglevel", "error", "-i", str(work / "carol.mkv"),
            "-map", "0:v", "-map", "0:a", "-c:v", "copy", "-c:a", "aac", "-ac", "1", "-ar", "48000",
            "-movflags", "+faststart", str(work / "ffmpeg_remux.mp4"),
        ]  # fmt: skip
        commands = {"converter": converter, "ffmpeg": ffmpeg, "converter_remux": converter_remux, "ffmpeg_remux": ffmpeg_remux}
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for run in range(args.runs):
            for name, argv in commands.items():
                cpu, wall = timed(argv)
                rows[name].append((cpu, wall))
                print(f"run {run + 1}: {name}: {cpu:.2f} CPU s, {wall:.2f} s wall", flush=True)
        media = {name: duration_of(work / f"{name}.mp4") for name in rows}
        ffmpeg_version = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout.split("\n")[0]
        best = {name: min(r[0] for r in runs) for name, runs in rows.items()}
        speed = {name: media[name] / best[name] for name in rows}
        lines = [
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, 2 cores, Python {platform.python_version()}, "
            f"PyAV {av.__version__}, {ffmpeg_version.split(' Copyright')[0]}, by `bench/convert.py` "
            f"({args.seconds:.0f} s two-person input, best of {args.runs}).",
            "",
            "| converter | media (s) | CPU (s) | wall (s) | media seconds per CPU second |",
            "|---|---:|---:|---:|---:|",
        ]
        labels = {
            "converter": "converter job: grid, VP8 in (PyAV + numpy)",
            "ffmpeg": "ffmpeg CLI: grid, VP8 in (filter graph)",
            "converter_remux": "converter job: remux path, H.264 in",
            "ffmpeg_remux": "ffmpeg CLI: `-c:v copy`, H.264 in",
        }
        for name, label in labels.items():
            wall = min(r[1] for r in rows[name])
            lines.append(f"| {label} | {media[name]:.1f} | {best[name]:.2f} | {wall:.2f} | {speed[name]:.1f} |")
        lines += [
            "",
            f"- grid: converter / ffmpeg CLI **{speed['converter'] / speed['ffmpeg']:.2f}x** (target ≥ 0.9x)",
            f"- remux path: converter / ffmpeg CLI {speed['converter_remux'] / speed['ffmpeg_remux']:.2f}x; "
            f"remux vs the grid path: {speed['converter_remux'] / speed['converter']:.0f}x faster",
        ]
        text = "\n".join(lines)
        print(text)
        if not args.no_doc:
            write_section("convert", "Recording conversion", text)
            print("written to docs/benchmarks.md")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
