"""The MCU against Janus, side by side in one run: the same aiortc publisher (VP8 640x360 30 fps,
~1.5 Mbit/s on the wire) and the same non-decoding aiortc subscribers (bench/mcu_peer.py) through
the MCU, through Janus 1.1.2 in its default configuration (a thread per handle) and through Janus
with shared event loops (``event_loops = 2``), at N = 1, 4, 8, 16, 32 subscribers.

Per server and size: the server's CPU (all its threads, /proc schedstat) over a fixed window
with the publisher alone and with N subscribers; per forwarded stream, the difference over N,
and per forwarded packet (µs, from the packets the subscribers received); received Mbit/s,
frames and packets a second per subscriber (the lowest and the mean: equal for all, or the table
says so); the subscribers' own CPU (when they, not the server, are at their limit, the figures
say so); join-to-first-frame p50/p95; and the delay the server adds per packet, RTP in → RTP
out, from kernel timestamps on the namespace's loopback (bench/rtp_delay.py), over a few seconds
after the CPU window (the capture's own cost stays out of the CPU figures).

Everything runs inside a private network namespace the benchmark makes for itself (it re-runs
itself under ``unshare --net``): ``lo`` and a veth pair with both ends inside, Janus on
127.0.0.2 (it skips loopback interfaces when gathering ICE candidates); nothing leaves it.

    make bench-janus   (or: .venv/bin/python bench/sfu_vs_janus.py --sizes 1 4 --window 5)
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
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

from rich.console import Console  # noqa: E402

from bench.janus import JanusServer  # noqa: E402
from bench.mcu_forwarding import Target, cpu_seconds, peer, percentile, stop, subscriber_results, subscribers_ready  # noqa: E402
from bench.report import DOC, write_section  # noqa: E402
from bench.rtp_delay import capture, forwarding_delays  # noqa: E402
from infra.launcher import Platform, free_port  # noqa: E402
from infra.pbx_client import PbxClient  # noqa: E402
from webmeeting.services.licenses import add_license  # noqa: E402

console = Console()
VETH, VETH_PEER, JANUS_ADDRESS = "wm-janus0", "wm-janus1", "127.0.0.2"
IN_NAMESPACE = "WM_BENCH_IN_NETNS"
DELAY_WINDOW_S = 4.0  # seconds of packet capture per size, after the CPU window


def enter_namespace() -> None:
    """Re-run this benchmark in a network namespace of its own (root: as the network tests)."""
    if os.environ.get(IN_NAMESPACE):
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("unshare (util-linux) is needed")
    os.execve(unshare, [unshare, "--net", sys.executable, *sys.argv], {**os.environ, IN_NAMESPACE: "1"})  # noqa: S606 - argv only, no shell


def set_up_links() -> None:
    """``lo`` up; a veth pair whose two ends stay here, 127.0.0.2 on one of them."""
    run = lambda *a: subprocess.run(list(a), check=True)  # noqa: E731
    run("ip", "link", "set", "lo", "up")
    run("ip", "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER)
    run("ip", "addr", "add", f"{JANUS_ADDRESS}/32", "dev", VETH)
    run("ip", "link", "set", VETH, "up")
    run("ip", "link", "set", VETH_PEER, "up")
    for name in ("all", "default", VETH, "lo"):
        for key, value in (("route_localnet", 1), ("accept_local", 1), ("rp_filter", 0)):
            Path(f"/proc/sys/net/ipv4/conf/{name}/{key}").write_text(str(value))


class Server:
    """What the peers connect to and which process is measured."""

    def __init__(self, name: str, pid: Any, publisher_args: list[str], subscriber_args: list[str]) -> None:
        self.name, self._pid, self.publisher_args, self.subscriber_args = name, pid, publisher_args, subscriber_args

    def pid(self) -> int:
        return int(self._pid()) if callable(self._pid) else int(self._pid)


def cpu_pair(pids: list[int], window: float) -> list[float]:
    """Cores used by each of ``pids`` over the same ``window`` seconds."""
    before, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - t0
    return [(cpu_seconds(p) - b) / elapsed for p, b in zip(pids, before, strict=True)]


def run_size(server: Server, n: int, window: float) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="wm-bench-sfu-"))
    pub = peer(["publish", *server.publisher_args])
    row: dict[str, Any] = {"server": server.name, "subscribers": n}
    try:
        time.sleep(3)  # the publisher in and sending
        pid = server.pid()
        measured = window * (3 if n <= 4 else 1)  # few subscribers add little: measure longer
        (baseline,) = cpu_pair([pid], measured)
        subs = peer(["subscribe", *server.subscriber_args, "--count", str(n), "--out", str(out)])
        try:
            if not subscribers_ready(subs, out, n):
                return {**row, "failed": "subscribers never all received video"}
            loaded, clients = cpu_pair([pid, subs.pid], measured)
            forwarded, per_frame, copies = forwarding_delays(capture(DELAY_WINDOW_S))
        finally:
            stop(subs)
        ready, final = subscriber_results(out)
    finally:
        stop(pub)
        time.sleep(1.5)
    per_stream = max(loaded - baseline, 0.0) / n
    packets = statistics.mean(f["packets_per_s"] for f in final) if final else 0.0
    return {
        **row,
        "baseline_cores": baseline,
        "loaded_cores": loaded,
        "client_cores": clients,
        "per_stream_pct": per_stream * 100,
        "us_per_packet": per_stream / packets * 1e6 if packets else None,
        "mbps": statistics.mean(f["mbps"] for f in final) if final else 0.0,
        "mbps_min": min((f["mbps"] for f in final), default=0.0),
        "fps": statistics.mean(f["frames_per_s"] for f in final) if final else 0.0,
        "fps_min": min((f["frames_per_s"] for f in final), default=0.0),
        "packets_per_s": packets,
        "join_s": ready["join_to_first_frame_s"],
        "delay_s": forwarded,
        "frame_delay_s": per_frame,
        "delay_streams": copies,
    }


def render(rows: list[dict[str, Any]], window: float) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}"
    lines = [
        f"Measured {stamp} on {machine} by `bench/sfu_vs_janus.py` (CPU window {window:.0f} s per size, "
        f"{3 * window:.0f} s at 1 and 4 subscribers; the publisher-alone baseline as long). Janus 1.1.2 from Debian.",
        "",
        "| server | subscribers | server CPU (cores) | CPU per forwarded stream | µs per packet | received per subscriber (mean; lowest) | subscribers' CPU | join-to-first-frame p50 / p95 | forwarding delay per packet p50 / p95 / p99 | per frame (its last packet) p50 / p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['server']} | {r['subscribers']} | — | — | — | {r['failed']} | — | — | — | — |")
            continue
        us = f"{r['us_per_packet']:.0f}" if r["us_per_packet"] else "—"
        joins = r["join_s"]
        d = r.get("delay_s") or []
        delay = (
            f"{percentile(d, 50) * 1000:.2f} / {percentile(d, 95) * 1000:.2f} / {percentile(d, 99) * 1000:.2f} ms "
            f"({len(d)} packets, {r['delay_streams']} of {r['subscribers']} streams)"
            if d
            else "—"
        )
        f = r.get("frame_delay_s") or []
        frame = f"{percentile(f, 50) * 1000:.2f} / {percentile(f, 95) * 1000:.2f} ms ({len(f)} frames)" if f else "—"
        lines.append(
            f"| {r['server']} | {r['subscribers']} | {r['loaded_cores']:.3f} (publisher alone {r['baseline_cores']:.3f}) | "
            f"{r['per_stream_pct']:.2f} % | {us} | {r['mbps']:.2f} Mbps, {r['fps']:.1f} fps, {r['packets_per_s']:.0f} pkt/s; "
            f"{r['mbps_min']:.2f} Mbps, {r['fps_min']:.1f} fps | {r['client_cores']:.2f} | "
            f"{percentile(joins, 50) * 1000:.0f} / {percentile(joins, 95) * 1000:.0f} ms | {delay} | {frame} |"
        )
    lines += [
        "",
        "How to read it: *CPU per forwarded stream* is (server CPU with N subscribers − with the publisher "
        "alone) / N, kernel time included (on loopback a send also pays for its delivery); *µs per packet* "
        "divides that by the packets a second each subscriber received. Where the subscribers' CPU nears the "
        "machine's cores, or the lowest subscriber falls behind the mean, the clients and not the servers are "
        "measured at that size. *Forwarding delay*: from a publisher's packet to its copy for a subscriber, "
        "both as the kernel timestamped them where they were received (inside the namespace), over the packets matched "
        f"({DELAY_WINDOW_S:.0f} s after the CPU window); *per frame*: from a frame's last packet at the server to "
        "its copy's at the subscriber, when the frame is whole there (the MCU sends a frame's packets to a "
        "subscriber together once its last one is in: its earlier packets wait for that one, the frame does not).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--servers", nargs="+", default=["mcu", "janus", "janus-loops"], choices=["mcu", "janus", "janus-loops"])
    parser.add_argument("--window", type=float, default=10.0, help="seconds of CPU measurement per size")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    enter_namespace()
    set_up_links()

    rows: list[dict[str, Any]] = []
    platform: Platform | None = None
    try:
        for name in args.servers:
            janus: JanusServer | None = None
            if name == "mcu":
                if platform is None:
                    platform = Platform(
                        Path(tempfile.mkdtemp(prefix="wm-bench-sfu-platform-")), project="wm-bench-sfu", mcu_count=1
                    )
                    platform.start()
                lic = add_license(
                    edition="bench", expires_at=datetime.now(UTC) + timedelta(days=1), max_participants=100, recording=False
                )
                pbx = PbxClient(platform.endpoints["pbx_api"])
                assert pbx.activate(lic.key, "bench.example.com", "meet.example.com").status_code == 201
                ext = {"number": "101", "first_name": "Bench", "last_name": "Mark", "email": "b@example.com"}
                key = pbx.sync([ext]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
                target = Target(platform, key, "forward", args.window)
                portal = ["--portal", platform.endpoints["portal"], f"--key={key}"]  # a key may start with "-"
                server = Server("MCU", target.server_pid, portal, portal)
            else:
                janus = JanusServer(JANUS_ADDRESS, VETH, free_port(), 2 if name == "janus-loops" else None)
                janus.start()
                assert janus.proc is not None
                server = Server(janus.name, janus.proc.pid, ["--janus", janus.url], ["--janus", janus.url])
            try:
                for n in args.sizes:
                    console.print(f"{server.name}: {n} subscriber(s)…")
                    row = run_size(server, n, args.window)
                    console.print({k: v for k, v in row.items() if k != "join_s"})
                    rows.append(row)
            finally:
                if janus is not None:
                    janus.stop()
    finally:
        if platform is not None:
            platform.stop()
    text = render(rows, args.window)
    console.print(text)
    results = Path(tempfile.gettempdir()) / "wm-bench-sfu-results.json"
    results.write_text(json.dumps(rows, indent=1))
    console.print(f"results: {results}")
    if not args.no_doc:
        write_section("sfu_vs_janus", "MCU and Janus, side by side", text)
        console.print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
