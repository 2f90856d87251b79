"""MCU forwarding cost, side by side in one run: the MCU's encoded passthrough against stock
aiortc ``MediaRelay`` re-encoding (bench/relay_worker.py), one 640x360 30 fps VP8 publisher
(~1.2 Mbps) and 1, 4, 8, 16, 32 subscribers.

Measures the server process's CPU (all threads, /proc schedstat, ns) over a fixed window, per
forwarded stream, forwarded streams per core, and join-to-first-frame (portal join, signalling,
ICE, DTLS, first keyframe at the subscriber) p50/p95. Publisher and subscribers run in their own
processes (bench/mcu_peer.py); subscribers never decode. Prints a table and writes it into
docs/benchmarks.md.

    make bench-mcu   (or: .venv/bin/python bench/mcu_forwarding.py --sizes 1 4 --window 5)
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
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

import requests  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.report import DOC, write_section  # noqa: E402
from infra.launcher import HOST, Platform, free_port  # noqa: E402
from infra.pbx_client import PbxClient  # noqa: E402
from webmeeting import tokens  # noqa: E402
from webmeeting.services.licenses import add_license  # noqa: E402

console = Console()


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``, from the scheduler's nanosecond accounting
    (/proc/PID/task/*/schedstat), not the 10 ms ticks of /proc/PID/stat."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def cpu_share(pid: int, window: float) -> float:
    """Cores used by ``pid`` over ``window`` seconds (1.0 = one full core)."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def peer(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "mcu_peer.py"), *args], cwd=ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def subscribers_ready(subs: subprocess.Popen[bytes], out: Path, n: int) -> bool:
    """Whether the ``n`` subscribers of ``subs`` all got video (``out``/ready.json), then settled."""
    deadline = time.monotonic() + 60 + 2 * n
    while not (out / "ready.json").exists():
        if subs.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    time.sleep(2)
    return True


def subscriber_results(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the subscribers wrote: their joins (ready.json) and what each received (final.json)."""
    ready = json.loads((out / "ready.json").read_text())
    final = json.loads((out / "final.json").read_text()) if (out / "final.json").exists() else []
    return ready, final


class Target:
    """Where peers connect and which process to measure."""

    def __init__(self, platform: Platform, key: str, mode: str, window: float) -> None:
        self.platform, self.key, self.mode, self.window = platform, key, mode, window
        self.proc: subprocess.Popen[bytes] | None = None
        if mode == "relay":
            port = free_port()
            env = {**os.environ, **platform.mcu_env("relay-ref", "bench", port)}
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "relay_worker.py"), "--port", str(port)], env=env)
            self.url = f"ws://{HOST}:{port}/ws"
            for _ in range(100):
                try:
                    requests.get(f"http://{HOST}:{port}/ws", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.1)

    def token_args(self, n: int, out: Path) -> list[str]:
        if self.mode != "relay":
            return []
        now = datetime.now(UTC)
        minted = [
            tokens.issue(
                self.platform.token_keys[0],
                tokens.JoinClaims(self.key, f"{i:024d}", f"p{i}", "participant", "relay-ref", 100, now + timedelta(minutes=5)),
                now,
            )
            for i in range(n)
        ]
        path = out / "tokens.json"
        path.write_text(json.dumps(minted))
        return ["--mcu-url", self.url, "--tokens", str(path)]

    def publisher_args(self) -> list[str]:
        if self.mode != "relay":
            return []
        now = datetime.now(UTC)
        claims = tokens.JoinClaims(self.key, "f" * 24, "publisher", "participant", "relay-ref", 100, now + timedelta(minutes=5))
        return ["--mcu-url", self.url, "--token", tokens.issue(self.platform.token_keys[0], claims, now)]

    def server_pid(self) -> int:
        if self.proc:
            return self.proc.pid
        health = requests.get(self.platform.endpoints["mcus"][0]["status"], timeout=5).json()
        busy = [w for w in health["workers"] if w["rooms"] > 0]
        assert len(busy) == 1, health
        return int(busy[0]["pid"])

    def close(self) -> None:
        if self.proc:
            stop(self.proc)


def run_size(target: Target, n: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="wm-bench-mcu-"))
    portal = target.platform.endpoints["portal"]
    pub = peer(["publish", "--portal", portal, f"--key={target.key}", *target.publisher_args()])  # a key may start with "-"
    try:
        time.sleep(3)  # publisher joined and sending
        pid = target.server_pid()
        # few subscribers add little CPU: measure longer there, and the baseline as long as the load
        window = target.window * (3 if n <= 4 else 1)
        baseline = cpu_share(pid, window)
        subs = peer(
            [
                "subscribe",
                "--portal",
                portal,
                f"--key={target.key}",
                "--count",
                str(n),
                "--out",
                str(out),
                *target.token_args(n, out),
            ]
        )
        try:
            if not subscribers_ready(subs, out, n):
                return {"mode": target.mode, "subscribers": n, "failed": "subscribers never all received video"}
            loaded = cpu_share(pid, window)
        finally:
            stop(subs)
        ready, final = subscriber_results(out)
    finally:
        stop(pub)
        time.sleep(1.5)
    per_stream = max(loaded - baseline, 0.0) / n
    return {
        "mode": target.mode,
        "subscribers": n,
        "baseline_cores": baseline,
        "loaded_cores": loaded,
        "per_stream_pct": per_stream * 100,
        "total_per_stream_pct": loaded / n * 100,
        "streams_per_core": (1 / per_stream) if per_stream > 0 else float("inf"),
        "mbps": statistics.mean(f["mbps"] for f in final) if final else 0.0,
        "fps": statistics.mean(f["frames_per_s"] for f in final) if final else 0.0,
        "join_s": ready["join_to_first_frame_s"],
    }


def render(rows: list[dict[str, Any]], joins: list[float], window: float) -> str:
    lines = [
        "| server | subscribers | server CPU (cores) | CPU per forwarded stream | streams per core | received per subscriber |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = "MCU passthrough" if r["mode"] == "forward" else "aiortc MediaRelay (re-encode)"
        if "failed" in r:
            lines.append(f"| {name} | {r['subscribers']} | — | — | — | {r['failed']} |")
            continue
        lines.append(
            f"| {name} | {r['subscribers']} | {r['loaded_cores']:.3f} (idle+publisher {r['baseline_cores']:.3f}) | "
            f"{r['per_stream_pct']:.2f} % | {r['streams_per_core']:.0f} | {r['mbps']:.2f} Mbps, {r['fps']:.1f} fps |"
        )
    fwd = {r["subscribers"]: r for r in rows if r["mode"] == "forward" and "failed" not in r}
    rel = {r["subscribers"]: r for r in rows if r["mode"] == "relay" and "failed" not in r}
    ratios = [
        f"{n}: {rel[n]['per_stream_pct'] / fwd[n]['per_stream_pct']:.0f}x"
        for n in sorted(fwd)
        if n in rel and fwd[n]["per_stream_pct"] > 0
    ]

    def per_frame(r: dict[str, Any]) -> float:  # CPU per 30 fps worth of delivered frames
        return float(r["per_stream_pct"]) * 30.0 / max(float(r["fps"]), 1.0)

    frame_ratios = [
        f"{n}: {per_frame(rel[n]) / per_frame(fwd[n]):.0f}x" for n in sorted(fwd) if n in rel and fwd[n]["per_stream_pct"] > 0
    ]
    stamp = time.strftime("%Y-%m-%d")
    machine = f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}"
    return "\n".join(
        [
            f"Measured {stamp} on {machine} by `bench/mcu_forwarding.py` (CPU window {window:.0f} s per size, {3 * window:.0f} s at 1 and 4 subscribers; the idle+publisher baseline as long).",
            "",
            *lines,
            "",
            f"- MediaRelay / passthrough CPU per stream, by subscribers: {', '.join(ratios) or 'n/a'}",
            f"- the same per delivered frame (a saturated reference drops frames): {', '.join(frame_ratios) or 'n/a'}",
            f"- Join-to-first-frame through the portal and the MCU ({len(joins)} joins): "
            f"p50 {percentile(joins, 50) * 1000:.0f} ms, p95 {percentile(joins, 95) * 1000:.0f} ms, max {max(joins) * 1000:.0f} ms"
            if joins
            else "- Join-to-first-frame: no samples",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--modes", nargs="+", default=["forward", "relay"], choices=["forward", "relay"])
    parser.add_argument("--window", type=float, default=10.0, help="seconds of CPU measurement per size")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="wm-bench-platform-"))
    platform = Platform(state, project="wm-bench-mcu", mcu_count=1)
    platform.start()
    rows: list[dict[str, Any]] = []
    try:
        lic = add_license(
            edition="bench", expires_at=datetime.now(UTC) + timedelta(days=1), max_participants=100, recording=False
        )
        pbx = PbxClient(platform.endpoints["pbx_api"])
        assert pbx.activate(lic.key, "bench.example.com", "meet.example.com").status_code == 201
        ext = {"number": "101", "first_name": "Bench", "last_name": "Mark", "email": "b@example.com"}
        key = pbx.sync([ext]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
        for mode in args.modes:
            target = Target(platform, key, mode, args.window)
            try:
                for n in args.sizes:
                    console.print(f"[bold]{mode}[/bold]: {n} subscriber(s)…")
                    row = run_size(target, n)
                    rows.append(row)
                    console.print({k: v for k, v in row.items() if k != "join_s"})
            finally:
                target.close()
    finally:
        platform.stop()
    joins = [j for r in rows if r["mode"] == "forward" for j in r.get("join_s", [])]
    text = render(rows, joins, args.window)
    console.print(text)
    if not args.no_doc:
        write_section("mcu_forwarding", "MCU forwarding", text)
        console.print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
