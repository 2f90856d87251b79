"""The MCU supervisor: ``python -m mcu_vm``.

Accepts browsers' signalling WebSockets, reads the join token, and relays the socket to the
worker process that owns the meeting (hash of the meeting key), so one meeting lives in one
event loop while meetings spread over every core. Media flows directly between browsers and
that worker (ICE). Heartbeats the portal with the VM's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import secrets
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from mcu_vm.portal import PortalClient
from mcu_vm.settings import McuSettings
from mcu_vm.signalling import CLIENT_IP_HEADER, CLOSE_UNAUTHENTICATED, WS_HEARTBEAT_S
from mcu_vm.worker import serve
from webmeeting import tokens
from webmeeting.domain import signalling as contract
from webmeeting.domain.api import McuHeartbeat

log = logging.getLogger("mcu.supervisor")
RELAY_DRAIN_S = 2.0  # after a worker closes a socket, how long its last words may take to reach the client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Workers end when the supervisor does, however it ends."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def client_ip(request: web.Request, trusted_hops: int) -> str:
    """The browser's address: the connection's, or the one the trusted TLS proxy (Caddy, which
    replaces any client-supplied X-Forwarded-For) reports."""
    if trusted_hops <= 0:
        return request.remote or ""
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else request.remote or ""


def worker_for(meeting_key: str, workers: int) -> int:
    return int(hashlib.sha256(meeting_key.encode()).hexdigest()[:8], 16) % workers


class Supervisor:
    def __init__(self, settings: McuSettings) -> None:
        self.settings = settings
        self.ports = [_free_port() for _ in range(max(1, settings.workers))]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.portal = PortalClient(settings.portal_url, settings.mcu_id, settings.secret, settings.auth)
        self.session: aiohttp.ClientSession | None = None
        self.draining = False

    def start_workers(self) -> None:
        ports = ",".join(str(p) for p in self.ports)
        secret = secrets.token_urlsafe(24)  # what links the workers of a spanning room: on stdin, never in argv
        for index, port in enumerate(self.ports):
            argv = [sys.executable, "-m", "mcu_vm.worker", "--port", str(port), "--index", str(index), "--ports", ports]
            # our own module; the environment is inherited
            proc = subprocess.Popen(argv, preexec_fn=_die_with_parent, stdin=subprocess.PIPE)
            assert proc.stdin is not None
            proc.stdin.write(secret.encode() + b"\n")
            proc.stdin.close()
            self.procs.append(proc)

    async def wait_workers(self) -> None:
        assert self.session
        for port in self.ports:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with self.session.get(f"http://127.0.0.1:{port}/status") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"worker on port {port} did not start")

    async def worker_status(self) -> list[dict[str, Any]]:
        assert self.session
        out = []
        for port in self.ports:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(f"http://127.0.0.1:{port}/status") as resp:
                    out.append(await resp.json())
        return out

    async def load(self) -> dict[str, int]:
        total = {"rooms": 0, "participants": 0, "forwarded_streams": 0, "decoders_created": 0}
        for status in await self.worker_status():
            for k in total:
                total[k] += int(status.get(k, 0))
        return total

    async def heartbeat(self) -> None:
        s = self.settings
        while True:
            statuses = await self.worker_status()
            full = len(statuses) == len(self.ports)  # a full picture only: who is connected, for reconciliation
            beat = McuHeartbeat(
                id=s.mcu_id,
                region=s.region,
                url=s.public_url,
                capacity=s.capacity,
                load=sum(int(st.get("forwarded_streams", 0)) for st in statuses),  # what its cores spend on
                latitude=s.latitude,
                longitude=s.longitude,
                workers=len(self.ports),
                live={k: v for st in statuses for k, v in st.get("live", {}).items()} if full else None,
                live_at=min(datetime.fromisoformat(str(st["live_at"])) for st in statuses) if full and statuses else None,
            )
            await self.portal.post("/api/mcu/v1/heartbeat", beat.model_dump(mode="json", exclude_none=True))
            await asyncio.sleep(s.heartbeat_s)

    async def relay(self, request: web.Request) -> web.WebSocketResponse:
        """Read the join message, then splice the socket to the meeting's worker."""
        assert self.session
        ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_S, max_msg_size=64 * 1024)
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=10)
        except TimeoutError:
            await ws.close()
            return ws
        if first.type != WSMsgType.TEXT:
            await ws.close()
            return ws
        try:
            token = first.json().get("token", "")
            claims = tokens.verify(self.settings.token_public_key, token, self.settings.mcu_id, datetime.now(UTC))
        except (ValueError, AttributeError, tokens.TokenError):
            await ws.send_json(contract.wire(contract.error("unauthenticated")))
            await ws.close(code=CLOSE_UNAUTHENTICATED)
            return ws
        port = self.ports[worker_for(claims.meeting_key, len(self.ports))]
        headers = {CLIENT_IP_HEADER: client_ip(request, self.settings.trusted_proxy_hops)}
        async with self.session.ws_connect(f"http://127.0.0.1:{port}/ws", headers=headers, max_msg_size=64 * 1024) as up:
            await up.send_str(first.data)

            async def down() -> None:
                async for msg in up:  # until the worker closes (or the client's side closed it)
                    if msg.type != WSMsgType.TEXT:
                        break
                    try:
                        await ws.send_str(msg.data)
                    except ConnectionError:  # the client is gone
                        break

            async def upward() -> bool:
                """The client's messages to the worker; True if the worker refused one (closed)."""
                async for msg in ws:
                    if msg.type != WSMsgType.TEXT:
                        break
                    try:
                        await up.send_str(msg.data)
                    except ConnectionError:  # the worker closed this participant (over rate, removed, ...)
                        return True
                return False

            pump, reader = asyncio.ensure_future(down()), asyncio.ensure_future(upward())
            try:
                await asyncio.wait((pump, reader), return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():
                    # the worker closed: stop reading the client here, so that the close below is
                    # a handshake (it reads and discards until the client's reply). A close while
                    # this task waits in receive() cuts the TCP connection at once, and the reset
                    # that a still-sending client then gets loses what it had yet to read: the
                    # worker's last words (rate_limited, the close reason)
                    reader.cancel()
                elif up.closed or (reader.exception() is None and reader.result()):
                    # what the worker said before it closed still reaches the client: closing `up`
                    # now would drop the messages the pump has not relayed yet
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(pump), RELAY_DRAIN_S)
                await asyncio.gather(reader, return_exceptions=True)
                await up.close()
                await asyncio.gather(pump, return_exceptions=True)
                await ws.close(code=up.close_code or 1000)  # nothing if the client closed it
            finally:
                pump.cancel()
                reader.cancel()
        return ws

    async def healthz(self, request: web.Request) -> web.Response:
        """Public (the instance group's health check, the portal's failure probe): up or
        draining, load and capacity (forwarded streams); nothing about any meeting."""
        load = await self.load()
        status = "draining" if self.draining else "up"
        return web.json_response({"status": status, "load": load["forwarded_streams"], "capacity": self.settings.capacity})

    async def internal_status(self, request: web.Request) -> web.Response:
        """Per-worker detail for an operator on the VM itself: loopback connections only, never
        through the TLS proxy (which adds X-Forwarded-For)."""
        if request.remote not in ("127.0.0.1", "::1") or "X-Forwarded-For" in request.headers or self.settings.trusted_proxy_hops:
            raise web.HTTPNotFound()
        return web.json_response({"id": self.settings.mcu_id, **(await self.load()), "workers": await self.worker_status()})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.relay)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/internal/status", self.internal_status)
        tasks: list[asyncio.Task[None]] = []

        async def on_startup(app: web.Application) -> None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), trust_env=False)
            await self.wait_workers()
            tasks.append(asyncio.ensure_future(self.heartbeat()))

        async def on_shutdown(app: web.Application) -> None:
            self.draining = True

        async def on_cleanup(app: web.Application) -> None:
            for t in tasks:
                t.cancel()
            for proc in self.procs:
                proc.send_signal(signal.SIGTERM)
            for proc in self.procs:
                try:
                    proc.wait(timeout=8)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if self.session:
                await self.session.close()
            await self.portal.close()

        app.on_startup.append(on_startup)
        app.on_shutdown.append(on_shutdown)
        app.on_cleanup.append(on_cleanup)
        return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = McuSettings.from_env()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sup = Supervisor(settings)
    sup.start_workers()
    asyncio.run(serve(sup.app(), settings.host, settings.port))


if __name__ == "__main__":
    main()
