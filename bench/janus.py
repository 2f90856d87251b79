"""Janus 1.1.2 (Debian `janus`), the production SFU the MCU is measured against.

``JanusServer`` writes its configuration into a temporary folder (the VideoRoom plugin and the
HTTP transport only, no STUN or TURN, ICE on one interface, one room with ``bitrate = 0`` and
``fir_freq = 0`` so that it neither caps nor asks for keyframes on its own) and starts it,
in its default configuration (a thread per handle) or with shared event loops.

Janus skips loopback interfaces when it gathers ICE candidates: the benchmark runs inside a
private network namespace (``bench/sfu_vs_janus.py``) where Janus gets 127.0.0.2 on one end of a
veth pair whose other end stays in the namespace too; nothing leaves it.

``JanusPeer`` is an aiortc publisher or subscriber speaking Janus's HTTP API (a session, a
VideoRoom handle, long-polled events).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import requests

ROOM = 1234
JANUS = "/usr/bin/janus"


def _library_folder() -> Path:
    found = glob.glob("/usr/lib/*/janus")
    if not found:
        raise SystemExit("Janus is not installed: make bench-janus installs Debian's janus")
    return Path(found[0])


class JanusServer:
    """One Janus process with a generated configuration."""

    def __init__(self, address: str, interface: str, port: int, event_loops: int | None) -> None:
        self.address, self.port, self.event_loops = address, port, event_loops
        self.folder = Path(tempfile.mkdtemp(prefix="wm-janus-"))
        lib = _library_folder()
        for kind, name in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
            (self.folder / kind).mkdir()
            os.symlink(lib / kind / name, self.folder / kind / name)
        loops = f"\tevent_loops = {event_loops}\n" if event_loops else ""
        (self.folder / "janus.jcfg").write_text(
            "general: {\n"
            f'\tconfigs_folder = "{self.folder}"\n'
            f'\tplugins_folder = "{self.folder / "plugins"}"\n'
            f'\ttransports_folder = "{self.folder / "transports"}"\n'
            f'\tevents_folder = "{self.folder / "events"}"\n'
            f'\tloggers_folder = "{self.folder / "loggers"}"\n'
            f'\tlog_to_file = "{self.folder / "janus.log"}"\n'
            "\tlog_to_stdout = false\n\tdebug_level = 3\n\tsession_timeout = 120\n"
            f"{loops}"
            "}\n"
            'media: {\n\trtp_port_range = "40000-49999"\n}\n'
            f'nat: {{\n\tice_enforce_list = "{interface}"\n\tignore_mdns = true\n\tice_lite = false\n}}\n'
            "plugins: {\n}\ntransports: {\n}\nevents: {\n\tbroadcast = false\n}\nloggers: {\n}\n"
        )
        (self.folder / "janus.plugin.videoroom.jcfg").write_text(
            "general: {\n}\n"
            f"room-{ROOM}: {{\n"
            '\tdescription = "bench"\n\tpublishers = 4\n\tbitrate = 0\n\tfir_freq = 0\n'
            '\tvideocodec = "vp8"\n\taudiocodec = "opus"\n'
            "}\n"
        )
        (self.folder / "janus.transport.http.jcfg").write_text(
            "general: {\n"
            f'\tjson = "compact"\n\tbase_path = "/janus"\n\thttp = true\n\tport = {port}\n\tip = "{address}"\n\thttps = false\n'
            "}\n"
            "admin: {\n\tadmin_http = false\n}\n"
            "cors: {\n}\n"
        )
        for sub in ("events", "loggers"):
            (self.folder / sub).mkdir()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/janus"

    @property
    def name(self) -> str:
        return f"Janus (event_loops = {self.event_loops})" if self.event_loops else "Janus (default)"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [JANUS, "--config", str(self.folder / "janus.jcfg"), "--configs-folder", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"Janus exited ({self.proc.returncode}); see {self.folder / 'janus.log'}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/info", timeout=1).ok:
                    return
            time.sleep(0.2)
        raise SystemExit(f"Janus did not answer on {self.url}; see {self.folder / 'janus.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


class JanusPeer:
    """One VideoRoom handle on one Janus session, over HTTP."""

    _transactions = itertools.count(1)

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = session, url
        self.session_id: int | None = None
        self.handle_id: int | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._poll: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": str(next(self._transactions))}
        async with self.http.post(f"{self.url}{path}", json=body) as r:
            reply: dict[str, Any] = await r.json()
        if reply.get("janus") == "error":
            raise RuntimeError(f"Janus: {reply.get('error')}")
        return reply

    async def open(self) -> None:
        self.session_id = (await self._post("", {"janus": "create"}))["data"]["id"]
        self.handle_id = (await self._post(f"/{self.session_id}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}))[
            "data"
        ]["id"]
        self._poll = asyncio.ensure_future(self._long_poll())

    async def _long_poll(self) -> None:
        while True:  # a pending long poll also keeps the session alive
            try:
                async with self.http.get(f"{self.url}/{self.session_id}?maxev=5", timeout=aiohttp.ClientTimeout(total=70)) as r:
                    got = await r.json()
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.2)
                continue
            for event in got if isinstance(got, list) else [got]:
                if event.get("janus") == "event":
                    await self.events.put(event)

    async def request(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """A VideoRoom request; its asynchronous answer (the event, with any JSEP)."""
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        reply = await self._post(f"/{self.session_id}/{self.handle_id}", message)
        if reply.get("janus") == "success":
            return reply
        event = await asyncio.wait_for(self.events.get(), 30)
        data = event.get("plugindata", {}).get("data", {})
        if data.get("error"):
            raise RuntimeError(f"VideoRoom: {data['error']}")
        return event

    async def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        with contextlib.suppress(Exception):
            await self._post(f"/{self.session_id}", {"janus": "destroy"})
