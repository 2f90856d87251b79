"""Meetings over bad networks, measured in real browsers (Chromium and Firefox).

The subscriber under test runs in a network namespace of its own (``infra/netns.py``) behind a
user-space link (``infra/impaired.py``): its media crosses the link as UDP to the TURN relay (it
may use nothing but the relay), its signalling crosses as TCP. Publishers are Chromium pages on
the machine's loopback. The same run goes on a clean link first, then through:

- ``lossy``: 3 % loss each way and 100 ms RTT (50 ms each way, 5 ms jitter);
- ``thin``: four publishers, the subscriber's downlink at 1 Mbit/s (a 200 ms bottleneck queue);
  the other subscribers (the publishers' own pages) are watched for their rate and keyframes;
- ``blackout``: 5 s in which nothing crosses either way, in the middle of the window.

Per subscriber and publisher it reads the page (``requestVideoFrameCallback`` for frames, the
WebRTC statistics for the rest): fps, freezes and the time frozen (an interval longer than
max(3 x the recent mean, mean + 150 ms), as the WebRTC statistics define a freeze, and the time
after the last frame), audio concealment, retransmitted bytes, keyframes, and whether anybody
rejoined; the MCU's own counters (keyframe requests, retransmissions resent and refused); for
``blackout`` how soon after it media is back. Prints the figures and writes them into
docs/benchmarks.md (section ``network``).

    .venv/bin/python bench/network.py --seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform as host
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.report import write_section  # noqa: E402
from infra import chromium  # noqa: E402
from infra.chromium import RELAY_ONLY  # noqa: E402
from infra.firefox import Firefox  # noqa: E402
from infra.impaired import Impairment, LinkSpec, UdpLink  # noqa: E402
from infra.launcher import DEV_LICENSE_KEYS, Platform  # noqa: E402
from infra.netns import Namespace, TcpGate  # noqa: E402
from infra.pbx_client import PbxClient  # noqa: E402

BLACKOUT_S = 5.0
TIMEOUT_S = 40.0

# an async function body: frames of every remote camera for arguments[0] ms, freezes, and the
# time the MCU had that video paused for this link (the tile says so): not counted as frozen
FRAMES = """
const ms = arguments[0], me = window.webmeeting.participantId();
const videos = [...document.querySelectorAll('video[data-participant-id]')].filter((v) => v.dataset.participantId !== me);
const out = {};
await Promise.all(videos.map((v) => new Promise((resolve) => {
  const id = v.dataset.participantId, times = [], paused = [], start = performance.now(), end = start + ms;
  const tick = (now) => { if (now <= end) { times.push(now); v.requestVideoFrameCallback(tick); } };
  v.requestVideoFrameCallback(tick);
  const sampler = setInterval(() => { if (v.dataset.paused) paused.push(performance.now()); }, 50);
  setTimeout(() => {
    clearInterval(sampler);
    const edges = [start, ...times, end];
    let freezes = 0, frozen = 0;
    const recent = [];
    for (let i = 1; i < edges.length; i++) {
      const d = edges[i] - edges[i - 1];
      const mean = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : 1000 / 30;
      const wasPaused = paused.some((t) => t >= edges[i - 1] && t <= edges[i]);
      if (!wasPaused && d > Math.max(3 * mean, mean + 150)) { freezes += 1; frozen += d; }
      recent.push(d); if (recent.length > 30) recent.shift();
    }
    const pausedMs = Math.min(ms, paused.length * 50);
    out[id] = {
      frames: times.length, fps: (times.length * 1000) / ms, freezes,
      frozenPct: pausedMs >= ms ? 0 : (100 * frozen) / (ms - pausedMs), pausedPct: (100 * pausedMs) / ms,
      times: times.map((t) => Math.round(t - start)),
    };
    resolve();
  }, ms + 300);
})));
return out;
"""

SCENARIOS = ("clean", "lossy", "thin", "blackout")
# the publishers' camera: a clip with motion and grain (Chromium's own fake picture is nearly
# still and compresses to ~200 kbit/s; this one takes what the encoder may send, as a real camera)
CLIP = Path(tempfile.gettempdir()) / "wm-bench-motion.y4m"
# four Chromium publishers at 640x360 (~1.7 Mbit/s each) and their twelve decodes overload two
# cores (the kernel drops datagrams for full socket buffers, and the clean pages then report loss
# of their own): the thin link's meeting publishes 320x180 (~0.6 Mbit/s each, still 2.4x its link)
CLIP_SMALL = Path(tempfile.gettempdir()) / "wm-bench-motion-small.y4m"


def make_clip() -> None:
    for clip, size in ((CLIP, "640x360"), (CLIP_SMALL, "320x180")):
        if not clip.exists():
            subprocess.run(
                [shutil.which("ffmpeg") or "/usr/bin/ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30,noise=alls=30:allf=t+u",
                 "-t", "4", "-pix_fmt", "yuv420p", str(clip)],
                check=True,
            )  # fmt: skip


def spec_for(scenario: str) -> LinkSpec:
    if scenario == "lossy":
        return LinkSpec(
            up=Impairment(loss=0.03, delay_ms=50, jitter_ms=5, seed=1),
            down=Impairment(loss=0.03, delay_ms=50, jitter_ms=5, seed=2),
        )
    if scenario == "thin":
        return LinkSpec(down=Impairment(rate_kbps=1000, queue_ms=200))
    return LinkSpec()


class Subscriber:
    """The browser under test, in its own namespace behind the link."""

    def __init__(self, kind: str, playwright: Any, platform: Platform, spec: LinkSpec) -> None:
        self.kind = kind
        self.namespace = Namespace()
        ports = [urlsplit(platform.endpoints["portal"]).port] + [urlsplit(m["url"]).port for m in platform.endpoints["mcus"]]
        self.gate = TcpGate(self.namespace, [int(p) for p in ports if p])
        self.link = UdpLink(self.namespace, int(platform.endpoints["turn"]["port"]), spec)
        self.context: Any = None
        self.fox: Firefox | None = None
        self.page: Any = None
        if kind == "chromium":
            self.context = chromium.launch(playwright, prefix=self.namespace.prefix)
            self.context.add_init_script(RELAY_ONLY)
        else:
            self.fox = Firefox({"media.peerconnection.ice.relay_only": True}, namespace=self.namespace)
            self.fox.client.timeout.script = 120  # a measuring window is a script of its own

    def join(self, url: str, name: str, camera: bool) -> None:
        if self.fox:
            self.fox.goto(url)
            self.fox.fill("input[name=display_name]", name)
            if not camera:
                self.fox.click("#prejoin-camera")
            self.fox.click("button[data-testid=join]")
        else:
            self.page = self.context.new_page()
            self.page.goto(url)
            self.page.fill("input[name=display_name]", name)
            if not camera:
                self.page.uncheck("#prejoin-camera")
            self.page.click("button[data-testid=join]")

    def run(self, body: str, *args: Any) -> Any:
        if self.fox:
            return self.fox.run_async(body, *args)
        return page_run(self.page, body, *args)

    def close(self) -> None:
        if self.fox:
            self.fox.close()
        if self.context:
            chromium.close(self.context)
        self.link.close()
        self.gate.close()
        self.namespace.close()


def page_run(page: Any, body: str, *args: Any) -> Any:
    return page.evaluate(f"async (args) => await (async function () {{ {body} }}).apply(null, args)", list(args))


def wait(what: str, check: Any, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            got = check()
            if got:
                return got
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def stats_of(stats: dict[str, Any], publisher: str) -> dict[str, Any]:
    entry = stats.get(publisher) or {}
    return {"video": entry.get("video") or {}, "audio": entry.get("audio") or {}}


def delta(after: dict[str, Any], before: dict[str, Any], kind: str, key: str) -> float | None:
    a, b = after[kind].get(key), before[kind].get(key)
    return None if a is None or b is None else float(a) - float(b)


def measure(sub: Subscriber, publishers: list[str], seconds: float, blackout: LinkSpec | None = None) -> dict[str, Any]:
    """The window: stats before and after, frames sampled throughout; with ``blackout``, nothing
    crosses the link for ``BLACKOUT_S`` in the middle of it."""
    get = "return await window.webmeeting.stats();"
    before = sub.run(get)
    down = sub.link.spec.down
    link_before = (down.sent, down.lost, down.dropped)
    back_after = None
    if blackout:
        start = time.monotonic() + seconds / 2 - BLACKOUT_S / 2
        window = (start, start + BLACKOUT_S)
        for direction in (blackout.up, blackout.down):
            direction.blackouts.append(window)
        sub.gate.blackouts.append(window)
    frames = sub.run(FRAMES, int(seconds * 1000))
    after = sub.run(get)
    link = {"sent": down.sent - link_before[0], "lost": down.lost - link_before[1], "dropped": down.dropped - link_before[2]}
    if blackout:  # the first frame after the blackout's end, the slowest stream
        end_ms = (seconds / 2 + BLACKOUT_S / 2) * 1000
        firsts = [next((t for t in (frames.get(p) or {}).get("times", []) if t >= end_ms), None) for p in publishers]
        back_after = None if None in firsts else max((t - end_ms) / 1000 for t in firsts if t is not None)
    rows = []
    for pub in publishers:
        b, a = stats_of(before, pub), stats_of(after, pub)
        samples = delta(a, b, "audio", "samples")
        concealed = delta(a, b, "audio", "concealed")
        f = frames.get(pub) or {"fps": 0.0, "freezes": 0, "frozenPct": 100.0}
        rows.append(
            {
                "fps": f["fps"],
                "decoded_fps": (delta(a, b, "video", "framesDecoded") or 0) / seconds,
                "freezes": f["freezes"],
                "frozen_pct": f["frozenPct"],
                "paused_pct": f.get("pausedPct", 0.0),
                "concealed_pct": None if not samples or concealed is None else 100 * concealed / samples,
                "kbps": (delta(a, b, "video", "bytes") or 0) * 8 / seconds / 1000,
                "rtx_kbps": None
                if delta(a, b, "video", "retransmittedBytes") is None
                else (delta(a, b, "video", "retransmittedBytes") or 0) * 8 / seconds / 1000,
                "keyframes": delta(a, b, "video", "keyframes"),
                "nacks": delta(a, b, "video", "nacks"),
                "stats_freezes": delta(a, b, "video", "freezes"),
                "stats_frozen_s": delta(a, b, "video", "freezeSeconds"),
                "lost": delta(a, b, "video", "lost"),
            }
        )
    return {"streams": rows, "back_after_s": back_after, "link_window": link}


def average(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


@contextlib.contextmanager
def meeting(
    playwright: Any, platform: Platform, pbx: PbxClient, number: str, publishers: int
) -> Iterator[tuple[str, Any, list[Any], list[str]]]:
    """A fresh Quick Meeting with ``publishers`` Chromium pages in it (the first one organizes)."""
    quick = pbx.sync([{"number": number, "first_name": "N", "last_name": number, "email": f"n{number}@example.com"}]).json()[
        "extensions"
    ][0]
    clip = CLIP_SMALL if publishers > 1 else CLIP
    context = chromium.launch(playwright, args_extra=[f"--use-file-for-fake-video-capture={clip}"])
    pages: list[Any] = []
    try:
        for i in range(publishers):
            page = context.new_page()
            page.goto(quick["quick_meeting_organizer_url"] if i == 0 else quick["quick_meeting_url"])
            page.fill("input[name=display_name]", f"Publisher {i + 1}")
            page.click("button[data-testid=join]")
            pages.append(page)
        ids = [wait("a publisher in", lambda p=p: p.evaluate("window.webmeeting.participantId()")) for p in pages]
        yield quick["quick_meeting_url"], context, pages, ids
    finally:
        chromium.close(context)


def run_one(
    playwright: Any, platform: Platform, pbx: PbxClient, browser: str, scenario: str, seconds: float, number: str
) -> dict[str, Any]:
    spec = spec_for(scenario)
    publishers = 4 if scenario == "thin" else 1
    with meeting(playwright, platform, pbx, number, publishers) as (url, _, pages, ids):
        sub = Subscriber(browser, playwright, platform, spec)
        retried = 0
        try:
            while True:
                sub.join(url, f"{browser} under test", camera=scenario != "thin")
                try:
                    me = wait("the subscriber in", lambda s=sub: s.run("return window.webmeeting.participantId();"))
                    break
                except RuntimeError:
                    # now and then (after a run with four publishers) the page in its namespace is
                    # not in after 40 s: a second browser, counted in the figures ("retried")
                    seen = sub.run(
                        "return [document.getElementById('join-status')?.textContent, !document.getElementById('meeting')?.hidden,"
                        " document.querySelector('[data-testid=connection-state]')?.textContent];"
                    )
                    Console().print(f"[yellow]the subscriber is not in[/] (join status, in the meeting, connection): {seen}")
                    if retried:
                        raise
                    retried += 1
                    sub.close()
                    sub = Subscriber(browser, playwright, platform, spec)
            flowing = """const stats = await window.webmeeting.stats();
                return arguments[0].every((id) => ((stats[id] || {}).video || {}).framesDecoded > 30
                  || document.querySelector(`video[data-participant-id="${id}"]`)?.dataset.paused);"""
            try:
                wait("video at the subscriber (or paused for its link)", lambda: sub.run(flowing, ids))
                started = True
            except RuntimeError:  # measured all the same: the figures show what it got
                started = False
            if scenario != "thin":
                wait(
                    "the subscriber's video at the publisher",
                    lambda: (
                        (stats_of(page_run(pages[0], "return window.webmeeting.stats();"), me)["video"].get("framesDecoded") or 0)
                        > 30
                    ),
                )
            time.sleep(3)  # settle
            mcu_before = platform.mcu_forwarding()
            others_before = [page_run(p, "return window.webmeeting.stats();") for p in pages]
            result = measure(sub, ids, seconds, blackout=spec if scenario == "blackout" else None)
            others = []
            for i, page in enumerate(pages):
                now = page_run(page, "return window.webmeeting.stats();")
                for pub in [*ids, me]:
                    if pub == ids[i] or not stats_of(now, pub)["video"]:
                        continue
                    b, a = stats_of(others_before[i], pub), stats_of(now, pub)
                    others.append(
                        {
                            "fps": (delta(a, b, "video", "framesDecoded") or 0) / seconds,
                            "kbps": (delta(a, b, "video", "bytes") or 0) * 8 / seconds / 1000,
                            "keyframes": delta(a, b, "video", "keyframes"),
                        }
                    )
            sent = [p.evaluate("window.webmeeting.sent()") for p in pages]  # the publishers' encoders now
            joins = [sub.run("return window.webmeeting.joins();")] + [p.evaluate("window.webmeeting.joins()") for p in pages]
            result |= {
                "browser": browser,
                "scenario": scenario,
                "joins": joins,
                "started": started,
                "retried": retried,
                "mcu": diff(platform.mcu_forwarding(), mcu_before),
                "others": others,
                "publishers": sent,
                "link_down": {"sent": spec.down.sent, "lost": spec.down.lost, "dropped": spec.down.dropped},
            }
            return result
        finally:
            sub.close()


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(results: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        f"Measured on {host.machine()} with {host.python_implementation()} {host.python_version()}; "
        f"a {seconds:.0f} s window per run; the subscriber under test behind the user-space link, "
        "relay-only (its media is UDP to the TURN relay across the link). Per stream, averaged over "
        "the subscriber's streams; *others* are the publishers' own pages (clean links) in the same meeting.",
        "",
        "| browser | link | fps shown (decoded) | freezes | frozen (while sent) | paused for the link | audio concealed | video kbps | retransmitted kbps | keyframes | media back after the blackout | rejoined | MCU resent / refused NACKs | link: lost / dropped of sent | others: fps, kbps, keyframes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["streams"]
        mcu = r["mcu"]
        refused = sum(v for k, v in mcu.items() if k.startswith("refused_"))
        others = r["others"]
        lines.append(
            f"| {r['browser']} | {r['scenario']} | {fmt(average(s, 'fps'))} ({fmt(average(s, 'decoded_fps'))}) | {fmt(average(s, 'freezes'), 1)} | "
            f"{fmt(average(s, 'frozen_pct'))} % | {fmt(average(s, 'paused_pct'))} % | {fmt(average(s, 'concealed_pct'), 2)} % | {fmt(average(s, 'kbps'), 0)} | "
            f"{fmt(average(s, 'rtx_kbps'), 1)} | {fmt(average(s, 'keyframes'), 1)} | "
            f"{'-' if r['scenario'] != 'blackout' else fmt(r['back_after_s'], 2) + ' s'} | {'nobody' if set(r['joins']) == {1} else 'yes'}{' (its second browser)' if r.get('retried') else ''} | "
            f"{mcu.get('resent', 0)} / {refused} | "
            f"{r['link_window']['lost']} / {r['link_window']['dropped']} of {r['link_window']['sent']} | "
            + (
                f"{fmt(average(others, 'fps'))}, {fmt(average(others, 'kbps'), 0)}, {fmt(average(others, 'keyframes'), 1)}"
                if others
                else "-"
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--browsers", default="chromium,firefox")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    make_clip()
    state = Path(tempfile.mkdtemp(prefix="wm-bench-net-"))
    platform = Platform(state, project="wm-bench-net")
    results = []
    try:
        platform.start()
        pbx = PbxClient(platform.endpoints["pbx_api"])
        assert pbx.activate(DEV_LICENSE_KEYS[0], "net.example.com", "meet.net.example.com").status_code == 201
        platform.register_pbx("net.example.com", pbx.pbx_id, pbx.api_secret)
        number = 300
        with sync_playwright() as playwright:
            for browser in args.browsers.split(","):
                for scenario in args.scenarios.split(","):
                    number += 1
                    Console().print(f"[bold]{browser}[/] over a [bold]{scenario}[/] link …")
                    results.append(run_one(playwright, platform, pbx, browser, scenario, args.seconds, str(number)))
                    Console().print(results[-1])
    finally:
        platform.stop()
    table = Table(title="meetings over bad links")
    for col in ("browser", "link", "fps", "frozen %", "concealed %", "kbps", "rejoined"):
        table.add_column(col)
    for r in results:
        s = r["streams"]
        table.add_row(
            r["browser"], r["scenario"], fmt(average(s, "fps")), fmt(average(s, "frozen_pct")),
            fmt(average(s, "concealed_pct"), 2), fmt(average(s, "kbps"), 0), "nobody" if set(r["joins"]) == {1} else "yes",
        )  # fmt: skip
    Console().print(table)
    (state / "results.json").write_text(json.dumps(results, indent=1))
    Console().print(f"results: {state / 'results.json'}")
    if not args.no_doc:
        write_section("network", "Meetings over bad networks (issue 16)", render(results, args.seconds))


if __name__ == "__main__":
    main()
