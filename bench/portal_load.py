"""Portal load of a steady meeting: N participants in M meetings, held for a while, with the
meeting page's old behaviour (``before``: every page polled files, documents and poll runs
every 2 s, and refreshed its join token every 40 s to do so) and its current one (``after``: the
lists are fetched on joining and when the room says they changed; nothing in between).

Clients are signalling-only (the portal join, the MCU's socket; no media): what loads the portal
is the same. The meeting and MCU functions run in this process exactly as deployed
(functions-framework apps on a threaded WSGI server, real Firestore emulator), so every request
is counted with its wall time and CPU time, and every Firestore operation at the RPC layer
(``bench/firestore_meter.py``). The MCUs are the real ones (their heartbeats and participant
events are portal requests too). Clients call the functions directly, with the load balancer's
``X-Forwarded-For``, one address per participant (the local front door would rate-limit a
whole benchmark behind 127.0.0.1).

Prints the figures and writes them, with the capacity they imply under the production sizing
(``webmeeting.routes.SIZING``), into docs/benchmarks.md.

    .venv/bin/python bench/portal_load.py --participants 40 --meetings 8 --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform as host
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from bench.firestore_meter import Meter, install  # noqa: E402
from bench.report import DOC, write_section  # noqa: E402
from infra.launcher import DEV_LICENSE_KEYS, HOST, Platform, free_port  # noqa: E402
from infra.pbx_client import PbxClient  # noqa: E402
from mcu_vm.settings import McuSettings  # noqa: E402
from webmeeting import routes  # noqa: E402

POLL_EVERY_S = 2.0  # the old page's refreshShared
# production's sizing of the meeting API before this benchmark: one request at a time per
# instance, the default third of a vCPU of a 512 MiB function
SIZING_BEFORE = routes.Sizing(concurrency=1, max_instances=20, cpu=1 / 3, memory="512Mi", timeout_s=60)
TOKEN_REFRESH_S = 40.0  # the page's join-token refresh (tokens live 60 s)
LISTS = ("/files", "/pdfs", "/runs")
PRODUCTION_HEARTBEAT_S = McuSettings.__dataclass_fields__[
    "heartbeat_s"
].default  # what the MCU VMs run with  # what the page shows: shared files, documents, poll runs


@dataclass
class Counter:
    """Requests one function served: wall and CPU time of each."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def reset(self) -> None:
        with self.lock:
            self.wall, self.cpu, self.statuses = [], [], {}


def counting(app: Any, counter: Counter) -> Any:
    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        status: list[int] = []

        def start(code: str, headers: Any, *rest: Any) -> Any:
            status.append(int(code.split(" ", 1)[0]))
            return start_response(code, headers, *rest)

        body = b"".join(app(environ, start))
        with counter.lock:
            counter.wall.append(time.perf_counter() - t0)
            counter.cpu.append(time.thread_time() - c0)
            counter.statuses[status[0]] = counter.statuses.get(status[0], 0) + 1
        return [body]

    return wsgi


def serve(target: str, counter: Counter) -> str:
    import functions_framework

    app = functions_framework.create_app(target, str(ROOT / "functions" / target / "main.py"))
    port = free_port()
    server = make_server(HOST, port, counting(app, counter), threaded=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{HOST}:{port}"


class Client:
    """One participant's page, without media."""

    def __init__(self, n: int, meeting_api: str, key: str, mode: str) -> None:
        self.n, self.api, self.key, self.mode = n, meeting_api, key, mode
        self.headers = {"X-Forwarded-For": f"198.18.{n // 250}.{n % 250 + 1}, 192.0.2.1"}  # client, load balancer
        self.rejoin: str | None = None
        self.token = ""
        self.token_at = 0.0
        self.ready = asyncio.Event()

    async def join(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        body = {"meeting_key": self.key, "display_name": f"P{self.n}", "rejoin_secret": self.rejoin}
        async with http.post(f"{self.api}/api/meet/v1/join", json=body, headers=self.headers) as resp:
            data = await resp.json()
            assert resp.status == 200, data
        self.rejoin, self.token, self.token_at = data["rejoin_secret"], data["token"], time.monotonic()
        return dict(data)

    async def fetch_lists(self, http: aiohttp.ClientSession) -> None:
        if time.monotonic() - self.token_at > TOKEN_REFRESH_S:
            await self.join(http)
        for path in LISTS:
            for _ in range(15):  # the page waits for the MCU to announce it (403 not_connected)
                async with http.get(
                    f"{self.api}/api/meet/v1{path}", headers={**self.headers, "Authorization": f"Bearer {self.token}"}
                ) as resp:
                    if resp.status != 403:
                        break
                await asyncio.sleep(0.7)

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        joined = await self.join(http)
        async with http.ws_connect(joined["mcu_url"], heartbeat=None) as ws:
            await ws.send_json({"type": "join", "token": self.token, "meeting_key": self.key})
            first = await ws.receive_json(timeout=10)
            assert first["type"] == "joined", first
            reader = asyncio.ensure_future(self._read(ws))
            await self.fetch_lists(http)
            self.ready.set()
            try:
                while not stop.is_set():
                    if self.mode == "before":
                        with_timeout = asyncio.wait_for(stop.wait(), POLL_EVERY_S)
                        try:
                            await with_timeout
                        except TimeoutError:
                            await self.fetch_lists(http)
                    else:
                        await stop.wait()  # nothing changes in a steady meeting: no request
            finally:
                reader.cancel()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in ws:
            pass  # participant updates, content_changed: none expected in a steady meeting


async def hold(clients: list[Client], seconds: float, counters: dict[str, Counter], meter: Meter) -> dict[str, Any]:
    stop = asyncio.Event()
    for c in counters.values():
        c.reset()
    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.ensure_future(c.run(http, stop)) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), timeout=120)
        joining = counters["meeting_api"]
        with joining.lock:  # what joining costs the meeting API: the join, the lists, their retries
            join_phase = {
                "requests_per_join": len(joining.wall) / len(clients),
                "wall_ms": 1000 * statistics.fmean(joining.wall),
                "cpu_ms": 1000 * statistics.fmean(joining.cpu),
            }
        await asyncio.sleep(2)  # the MCUs' join events delivered
        for c in counters.values():
            c.reset()
        meter.reset()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        snapshot = {name: (list(c.wall), list(c.cpu), dict(c.statuses)) for name, c in counters.items()}
        reads, writes = meter.reads, meter.writes
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    minutes = len(clients) * elapsed / 60
    wall = [w for w, _, _ in snapshot.values() for w in w]
    cpu = [x for _, c, _ in snapshot.values() for x in c]
    api_wall, api_cpu, _ = snapshot["meeting_api"]
    return {
        "join": join_phase,
        "api_mean_ms": 1000 * statistics.fmean(api_wall) if api_wall else 0.0,
        "api_cpu_ms": 1000 * statistics.fmean(api_cpu) if api_cpu else 0.0,
        "participant_minutes": minutes,
        "requests": len(wall),
        "by_function": {name: len(w) for name, (w, _, _) in snapshot.items()},
        "statuses": {name: s for name, (_, _, s) in snapshot.items()},
        "requests_per_pm": len(wall) / minutes,
        "page_requests_per_pm": len(snapshot["meeting_api"][0]) / minutes,
        "reads_per_pm": reads / minutes,
        "writes_per_pm": writes / minutes,
        "p95_ms": 1000 * _p95(wall),
        "mean_ms": 1000 * statistics.fmean(wall) if wall else 0.0,
        "cpu_ms": 1000 * statistics.fmean(cpu) if cpu else 0.0,
    }


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def run(participants: int, meetings: int, seconds: float) -> list[dict[str, Any]]:
    from webmeeting.adapters import firestore as fs

    state = Path(tempfile.mkdtemp(prefix="wm-bench-load-"))
    platform = Platform(state, project="wm-bench-load", mcu_heartbeat_s=PRODUCTION_HEARTBEAT_S)
    counters = {"meeting_api": Counter(), "mcu_api": Counter()}
    rows = []
    try:
        platform.start(functions=False)
        portal_port = free_port()
        platform.endpoints["portal"] = f"http://{HOST}:{portal_port}"
        os.environ.update({k: v for k, v in platform.function_env().items() if k != "PYTHONPATH"})
        platform.export_env()
        meter = install(fs.client())
        for target in routes.functions():
            platform.upstreams[target] = serve(target, counters.get(target, Counter()))
        os.environ.update({k: v for k, v in platform.function_env().items() if k != "PYTHONPATH"})  # now with the tasks URL
        platform.export_env()
        platform.start_frontdoor(portal_port)
        platform.start_mcus()
        pbx = PbxClient(platform.endpoints["pbx_api"])
        assert pbx.activate(DEV_LICENSE_KEYS[0], "load.example.com", "meet.load.example.com").status_code == 201
        platform.register_pbx("load.example.com", pbx.pbx_id, pbx.api_secret)  # the organizers' dial-in data resolves
        numbers = [str(200 + i) for i in range(meetings)]
        synced = pbx.sync([{"number": n, "first_name": "P", "last_name": n, "email": f"p{n}@example.com"} for n in numbers])
        keys = [e["quick_meeting_url"].rsplit("/", 1)[1] for e in synced.json()["extensions"]]
        for mode in ("before", "after"):
            clients = [Client(i, platform.upstreams["meeting_api"], keys[i % meetings], mode) for i in range(participants)]
            row = asyncio.run(hold(clients, seconds, counters, meter))
            rows.append({"mode": mode, "participants": participants, "meetings": meetings, "seconds": seconds, **row})
            time.sleep(3)  # the sessions end before the next run
    finally:
        platform.stop()
    return rows


def _bound(sizing: routes.Sizing, rate: float, wall_ms: float, cpu_ms: float) -> float:
    """How many "units" arriving at ``rate`` requests per second each the function carries: the
    busy request slots they need (Little's law: rate x time in the function) against the slots
    it has (instances x concurrency), and the CPU they need against its vCPUs."""
    by_slots = sizing.max_instances * sizing.concurrency / (rate * wall_ms / 1000)
    by_cpu = sizing.max_instances * sizing.cpu / (rate * cpu_ms / 1000)
    return min(by_slots, by_cpu)


def capacity(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    api = routes.SIZING["meeting_api"]
    polling = before["page_requests_per_pm"] / 60
    join = after["join"]
    return {
        # concurrent participants of polling pages, on the old sizing and on the new one
        "polling_old": _bound(SIZING_BEFORE, polling, before["api_mean_ms"], before["api_cpu_ms"]),
        "polling_new": _bound(api, polling, before["api_mean_ms"], before["api_cpu_ms"]),
        # joins per second (each: its requests) the meeting API takes now; a steady participant costs nothing
        "joins_per_s": _bound(api, join["requests_per_join"], join["wall_ms"], join["cpu_ms"]),
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| page | participants / meetings | held (s) | portal requests per participant-minute (of them the pages') | "
        "p95 latency (ms) | CPU per request (ms) | Firestore reads per participant-minute | writes per participant-minute |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['participants']} / {r['meetings']} | {r['seconds']:.0f} | "
            f"{r['requests_per_pm']:.2f} ({r['page_requests_per_pm']:.2f}) | "
            f"{r['p95_ms']:.1f} | {r['cpu_ms']:.1f} | {r['reads_per_pm']:.2f} | {r['writes_per_pm']:.2f} |"
        )
    by_fn = "; ".join(f"{r['mode']}: " + ", ".join(f"{k} {v}" for k, v in r["by_function"].items()) for r in rows)
    before, after = rows[0], rows[-1]
    cap = capacity(before, after)
    now, old = routes.SIZING["meeting_api"], SIZING_BEFORE
    join = after["join"]
    stamp = time.strftime("%Y-%m-%d")
    machine = f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}, Firestore emulator"
    return "\n".join(
        [
            f"Measured {stamp} on {machine} by `bench/portal_load.py` (signalling-only clients, real MCUs).",
            "",
            *lines,
            "",
            f"Requests in the held window, by function: {by_fn}. The MCUs' heartbeats (every MCU, every few "
            "seconds, whatever it carries) are included: in a steady meeting they are all that is left, so their "
            "share per participant falls as MCUs fill (here 3 MCUs for the whole benchmark).",
            "",
            f"Joining costs the meeting API {join['requests_per_join']:.1f} requests per participant (the join, the "
            f"three lists, the retries while the MCU announces them), {join['wall_ms']:.0f} ms and "
            f"{join['cpu_ms']:.1f} ms of CPU each on average.",
            "",
            "Capacity of `meeting_api` with production's sizing (`webmeeting/routes.py` `SIZING`, terraform's "
            "instances, concurrency and vCPUs), from these figures: busy request slots by Little's law, or vCPUs, "
            "whichever binds first:",
            "",
            "| sizing (instances x concurrency, vCPU each) | pages | carries |",
            "|---|---|---:|",
            f"| before: {old.max_instances} x {old.concurrency}, {old.cpu:.2f} | polling | "
            f"{cap['polling_old']:,.0f} concurrent participants |",
            f"| now: {now.max_instances} x {now.concurrency}, {now.cpu:g} | polling | {cap['polling_new']:,.0f} concurrent participants |",
            f"| now: {now.max_instances} x {now.concurrency}, {now.cpu:g} | pushed (steady meetings) | "
            f"no request per steady participant; {cap['joins_per_s']:,.0f} joins per second |",
            "",
            "With pushed state a steady participant costs the portal nothing between joins and changes: what bounds "
            "the platform is joins and content changes (each a request of its author and one fetch per participant "
            "told), and the MCUs' own capacity.",
        ]
    )


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--meetings", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    rows = run(args.participants, args.meetings, args.seconds)
    table = Table(
        "page", "requests/participant-min", "p95 ms", "CPU ms/request", "reads/participant-min", "writes/participant-min"
    )
    for r in rows:
        table.add_row(
            r["mode"],
            f"{r['requests_per_pm']:.2f}",
            f"{r['p95_ms']:.1f}",
            f"{r['cpu_ms']:.1f}",
            f"{r['reads_per_pm']:.2f}",
            f"{r['writes_per_pm']:.2f}",
        )
    Console().print(table)
    for r in rows:
        Console().print(r["mode"], r["by_function"], r["statuses"])
    if not args.no_doc:
        write_section("portal-load", "Portal load of a steady meeting (issue 15)", render(rows))
        Console().print(f"written to {DOC}")


if __name__ == "__main__":
    main()
