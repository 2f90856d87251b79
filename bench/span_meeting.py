"""A 50-person meeting across the two workers of one MCU (issue 17): aiortc clients, each
publishing a camera (VP8 320x180 at 15 fps, about 300 kbit/s, pre-encoded once and looped, so
the machine's CPU is not spent encoding) and a microphone (Opus, 20 ms packets); a few of them
speak, the others are muted (as in any large meeting). Each subscriber should get every
speaker's audio and the cameras of the last N (9: nobody's audio carries a level here, so the
first nine who came), the other cameras paused for it.

The clients run in a few processes of their own, subscribe like the meeting page (one peer
connection per publisher) and never decode: they count the frames that arrive per publisher.
Over the measured window (60 s by default): per client, the cameras it got at full rate and
the speakers it heard at full rate; per MCU worker, its CPU, the streams it forwards and what
went down the pipe between the workers.

    .venv/bin/python bench/span_meeting.py [--people 50] [--seconds 60] [--processes 4] [--no-doc]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.mcu_forwarding import cpu_seconds, stop  # noqa: E402
from bench.report import DOC, write_section  # noqa: E402
from infra.launcher import MCU_SPAN_AFTER, Platform  # noqa: E402
from infra.mcu_client import McuClient  # noqa: E402
from mcu_vm import net, passthrough  # noqa: E402
from mcu_vm.adaptation import LAST_N  # noqa: E402
from webmeeting.services.licenses import add_license  # noqa: E402

console = Console()
WIDTH, HEIGHT, FPS = 320, 180, 15
VIDEO_BPS = 300_000
LOOP_FRAMES = 45  # 3 s of video, looped (a keyframe first, then deltas)
AUDIO_PPS = 50  # Opus, 20 ms
SPEAKERS = 4
FULL = 0.9  # "at full rate": at least this share of what was sent


def encoded_video() -> list[tuple[bytes, bool]]:
    """``LOOP_FRAMES`` VP8 frames of a moving, noisy picture: (data, keyframe)."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.bit_rate = VIDEO_BPS
    ctx.gop_size = 10 * LOOP_FRAMES  # one keyframe: the first
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(5)
    out: list[tuple[bytes, bool]] = []
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(LOOP_FRAMES):
        luma = ((xs + 4 * i) % 256 * 0.5 + (ys % 64) * 1.5 + rng.integers(0, 24, (HEIGHT, WIDTH))).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.stack([luma] * 3, axis=-1), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in ctx.encode(frame):
            out.append((bytes(packet), bool(packet.is_keyframe)))
    for packet in ctx.encode(None):
        out.append((bytes(packet), bool(packet.is_keyframe)))
    assert out and out[0][1], "the loop must start with a keyframe"
    return out


def encoded_audio() -> list[bytes]:
    """One second of a voice-like tone in 20 ms Opus packets."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 48000, "stereo", "s16"
    ctx.bit_rate = 32000
    out: list[bytes] = []
    t = np.arange(960) / 48000
    for i in range(AUDIO_PPS):
        wave = (3000 * np.sin(2 * np.pi * (180 + 20 * (i % 5)) * (t + i * 0.02))).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]).T.reshape(1, -1).copy(), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in ctx.encode(frame)]
    return out


class LoopTrack(MediaStreamTrack):
    """Pre-encoded packets at their own pace; a keyframe request (PLI) restarts the loop at its
    keyframe, as an encoder would send one."""

    def __init__(self, kind: str, packets: list[bytes], rate: int, keyframe_at: int | None) -> None:
        super().__init__()
        self.kind = kind
        self.packets = packets
        self.rate = rate
        self.keyframe_at = keyframe_at
        self.sender: Any = None
        self._n = 0
        self._i = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._n / self.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.keyframe_at is not None and self.sender is not None and self.sender.__dict__.get("_RTCRtpSender__force_keyframe"):
            self.sender._RTCRtpSender__force_keyframe = False
            self._i = self.keyframe_at
        packet = av.Packet(self.packets[self._i])
        clock = 90000 if self.kind == "video" else 48000
        packet.time_base = fractions.Fraction(1, clock)
        packet.pts = self._n * clock // self.rate
        self._n += 1
        self._i = (self._i + 1) % len(self.packets)
        if self._i == 0 and self.keyframe_at is not None:
            self._i = 1  # the loop goes on with deltas; a keyframe only when asked (and at the start)
        return packet


# -- one client process ------------------------------------------------------------------------


async def clients(args: argparse.Namespace) -> None:
    passthrough.install()  # count frames, never decode
    net.use_addresses(["127.0.0.1"])
    video = [data for data, _ in encoded_video()]
    audio = encoded_audio()
    out = Path(args.out)
    loop = asyncio.get_running_loop()
    measuring, stopping = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, measuring.set)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    people: list[McuClient] = []
    for i in range(args.first, args.first + args.count):
        person = McuClient(args.portal, args.key, f"Person {i}")
        await person.join()
        cam = LoopTrack("video", video, FPS, keyframe_at=0)
        mic = LoopTrack("audio", audio, AUDIO_PPS, keyframe_at=None)
        await person.publish([mic, cam])
        assert person.pub_pc is not None
        for t in person.pub_pc.getTransceivers():
            if t.kind == "video":
                cam.sender = t.sender
        if i >= args.speakers:
            assert person.ws is not None
            await person.ws.send_json({"type": "mute", "audio": False})
        people.append(person)
        (out / f"joined-{args.first}.json").write_text(json.dumps({"joined": len(people)}))
        await asyncio.sleep(args.gap)

    def snapshot() -> dict[str, dict[str, dict[str, int]]]:
        return {p.joined["participant_id"]: {pub: dict(r.kinds) for pub, r in p.received.items()} for p in people}

    await measuring.wait()
    before, t0 = snapshot(), time.monotonic()
    await stopping.wait()
    after, elapsed = snapshot(), time.monotonic() - t0
    rows = []
    for person in people:
        me = person.joined["participant_id"]
        got = {}
        for pub, kinds in after[me].items():
            was = before[me].get(pub, {})
            got[pub] = {k: (n - was.get(k, 0)) / elapsed for k, n in kinds.items()}
        rows.append({"id": me, "index": int(person.name.split()[-1]), "per_s": got})
    (out / f"final-{args.first}.json").write_text(json.dumps(rows))
    for person in people:
        await person.close()


# -- the run -------------------------------------------------------------------------------------


def worker_status(platform: Platform) -> list[dict[str, Any]]:
    mcu = platform.endpoints["mcus"][0]
    return list(requests.get(mcu["status"], timeout=10).json()["workers"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="run", choices=["run", "clients"])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--speakers", type=int, default=SPEAKERS)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between one process's joins")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--portal")
    parser.add_argument("--key")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.role == "clients":
        asyncio.run(clients(args))
        return

    platform = Platform(Path(tempfile.mkdtemp(prefix="wm-bench-span-platform-")), project="wm-bench-span", mcu_count=1)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        platform.start()
        lic = add_license(
            edition="bench", expires_at=datetime.now(UTC) + timedelta(days=1), max_participants=100, recording=False
        )
        from infra.pbx_client import PbxClient

        pbx = PbxClient(platform.endpoints["pbx_api"])
        assert pbx.activate(lic.key, "bench.example.com", "meet.example.com").status_code == 201
        ext = {"number": "101", "first_name": "Bench", "last_name": "Mark", "email": "b@example.com"}
        key = pbx.sync([ext]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
        out = Path(tempfile.mkdtemp(prefix="wm-bench-span-"))
        share = -(-args.people // args.processes)
        started = time.monotonic()
        for first in range(0, args.people, share):
            count = min(share, args.people - first)
            argv = [sys.executable, str(Path(__file__)), "clients", "--portal", platform.endpoints["portal"], f"--key={key}"]
            argv += ["--first", str(first), "--count", str(count), "--out", str(out), "--speakers", str(args.speakers)]
            argv += ["--gap", str(args.gap)]
            procs.append(subprocess.Popen(argv, cwd=ROOT))
        expected = args.people * (args.people - 1) * 2  # every subscription: audio and video
        while True:
            joined = sum(json.loads(f.read_text())["joined"] for f in out.glob("joined-*.json"))
            streams = sum(w["forwarded_streams"] for w in worker_status(platform))
            console.print(f"joined {joined}/{args.people}, forwarded streams {streams}/{expected}")
            if joined == args.people and streams >= expected:
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a client process ended")
            if time.monotonic() - started > 900:
                raise SystemExit("the meeting never came together")
            time.sleep(5)
        setup_s = time.monotonic() - started
        time.sleep(10)  # settled: keyframes in, last N applied
        workers = worker_status(platform)
        pids = [w["pid"] for w in workers]
        cpu0 = [cpu_seconds(p) for p in pids]
        client_cpu0 = [cpu_seconds(p.pid) for p in procs]
        span0 = [w["span"] for w in workers]
        fwd0 = [w["forwarding"] for w in workers]
        for p in procs:
            p.send_signal(signal.SIGUSR1)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        elapsed = time.monotonic() - t0
        workers1 = worker_status(platform)
        cores = [(cpu_seconds(p) - c) / elapsed for p, c in zip(pids, cpu0, strict=True)]
        client_cores = sum((cpu_seconds(p.pid) - c) / elapsed for p, c in zip(procs, client_cpu0, strict=True))
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop(p)
        rows = [r for f in sorted(out.glob("final-*.json")) for r in json.loads(f.read_text())]
    finally:
        for p in procs:
            if p.poll() is None:
                stop(p)
        platform.stop()

    speakers = {r["id"] for r in rows if r["index"] < args.speakers}
    per_client: list[dict[str, Any]] = []
    for r in rows:
        others = {pub: v for pub, v in r["per_s"].items() if pub != r["id"]}
        cameras = sorted((v.get("video", 0.0) for v in others.values()), reverse=True)
        full_cams = sum(1 for fps in cameras if fps >= FULL * FPS)
        heard = [others.get(s, {}).get("audio", 0.0) for s in speakers if s != r["id"]]
        per_client.append(
            {
                "full_cameras": full_cams,
                "paused_cameras_fps": max(cameras[LAST_N:], default=0.0),
                "camera_fps": cameras[:LAST_N],
                "speakers_full": sum(1 for pps in heard if pps >= FULL * AUDIO_PPS),
                "speakers": len(heard),
                "audio_pps": heard,
            }
        )
    good = [c for c in per_client if c["full_cameras"] == LAST_N and c["speakers_full"] == c["speakers"]]
    lines = [
        f"{args.people} aiortc clients in {args.processes} processes, one MCU with 2 workers "
        f"(`MCU_SPAN_AFTER` {MCU_SPAN_AFTER}: its home worker holds {MCU_SPAN_AFTER}, then each newcomer goes where fewest of the room are); "
        f"each publishes VP8 {WIDTH}x{HEIGHT} at {FPS} fps (~{VIDEO_BPS // 1000} kbit/s) and Opus at {AUDIO_PPS} packets/s; "
        f"{args.speakers} speak, the others are muted; last N = {LAST_N}. "
        f"Measured over {elapsed:.0f} s, after the meeting came together in {setup_s:.0f} s "
        f"({args.people * (args.people - 1)} subscription connections) and 10 s to settle. "
        f"Run {datetime.now(UTC):%Y-%m-%d} on this machine (2 cores, shared by the MCU, the clients and the platform).",
        "",
        "| | |",
        "|---|---|",
        f"| clients that got exactly {LAST_N} cameras at ≥ {FULL:.0%} of {FPS} fps and every speaker at ≥ {FULL:.0%} of {AUDIO_PPS} packets/s | **{len(good)} of {len(per_client)}** |",
        f"| cameras at full rate per client (min / mean / max) | {min(c['full_cameras'] for c in per_client)} / "
        f"{statistics.mean(c['full_cameras'] for c in per_client):.1f} / {max(c['full_cameras'] for c in per_client)} |",
        f"| those cameras' fps (min / mean) | {min(f for c in per_client for f in c['camera_fps']):.1f} / "
        f"{statistics.mean(f for c in per_client for f in c['camera_fps']):.1f} |",
        f"| the paused cameras' fps, highest any client got | {max(c['paused_cameras_fps'] for c in per_client):.2f} |",
        f"| speakers' audio packets/s (min / mean) | {min((p for c in per_client for p in c['audio_pps']), default=0):.1f} / "
        f"{statistics.mean([p for c in per_client for p in c['audio_pps']] or [0]):.1f} |",
        f"| clients' CPU (all processes) | {client_cores:.2f} cores |",
        "",
        "| MCU worker | people whose subscriptions it holds | forwarded streams | CPU | packets piped in / out a second | pipe datagrams lost | sent straight / slow / errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, w1 in enumerate(workers1):
        s0, s1 = span0[i], w1["span"]
        f0, f1 = fwd0[i], w1["forwarding"]
        placed = s1["placed"]
        lines.append(
            f"| {i} | {placed} | {w1['forwarded_streams']} | {cores[i]:.2f} cores | "
            f"{(s1['piped_in'] - s0['piped_in']) / elapsed:.0f} / {(s1['piped_out'] - s0['piped_out']) / elapsed:.0f} | "
            f"{s1['pipe_dropped'] - s0['pipe_dropped']} | "
            f"{(f1['sent_direct'] - f0['sent_direct']) / elapsed:.0f}/s / {(f1['sent_slow'] - f0['sent_slow']) / elapsed:.0f}/s / "
            f"{f1['send_errors'] - f0['send_errors']} |"
        )
    text = "\n".join(lines)
    console.print(text)
    (Path(tempfile.gettempdir()) / "wm-bench-span-results.json").write_text(
        json.dumps({"clients": per_client, "workers": workers1})
    )
    if not args.no_doc:
        write_section("span_meeting", "A 50-person meeting across two workers", text)
        console.print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
