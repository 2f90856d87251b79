"""One MCU worker process: one asyncio loop (one core), the rooms hashed to it.

Usage (started by the supervisor): python -m mcu_vm.worker --port PORT [--index I --ports P0,P1,...]
(its index among the workers and all their ports: a room larger than one worker spans them,
``mcu_vm.span``, with the secret the supervisor writes to its stdin)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from mcu_vm import net, passthrough
from mcu_vm.portal import PortalClient
from mcu_vm.recording import Uploader
from mcu_vm.room import RoomRegistry
from mcu_vm.settings import McuSettings
from mcu_vm.signalling import Signalling
from mcu_vm.span import Span


def make_app(settings: McuSettings, index: int = 0, ports: list[int] | None = None, span_secret: str = "") -> web.Application:
    passthrough.install()
    if settings.ice_addresses:
        net.use_addresses(list(settings.ice_addresses))
    portal = PortalClient(settings.portal_url, settings.mcu_id, settings.secret, settings.auth)
    uploader = (
        Uploader(Path(settings.recordings_dir), settings.raw_bucket, portal, settings.mcu_id) if settings.raw_bucket else None
    )
    registry = RoomRegistry(
        settings.mcu_id, settings.token_public_key, list(settings.ice_servers), portal, uploader, last_n=settings.last_n
    )
    span = registry.span = Span(registry, index, ports or [], span_secret, settings.span_after)

    async def status(request: web.Request) -> web.Response:
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")  # the snapshot's time, taken before it
        body = {**registry.load(), "live": registry.live(), "live_at": at}
        body |= {"forwarding": registry.forwarding(), "decoders_created": passthrough.decoders_created, "pid": os.getpid()}
        body["span"] = {
            "shadow_rooms": len(registry.shadows),
            # people whose subscriptions this worker holds: its rooms' own, and those placed here
            "placed": sum(1 for r in registry.rooms.values() for p in r.participants.values() if p.worker is None)
            + sum(len(r.participants) for r in registry.shadows.values()),
            "piped_in": sum(m.received for _, mirrors in span.homes.values() for m in mirrors.values()),
            "piped_out": sum(h.out.sent for h in span.helpers.values()),
            "pipe_dropped": sum(h.out.dropped for h in span.helpers.values()),
            "unknown_datagrams": span.unknown_datagrams,
        }
        return web.json_response(body)

    async def on_startup(app: web.Application) -> None:
        await span.start()
        if uploader:
            uploader.start()  # also resumes what a crash left undelivered
        if settings.udp_port_min and settings.udp_port_max:
            net.bind_in_port_range(asyncio.get_running_loop(), settings.udp_port_min, settings.udp_port_max)

    async def on_shutdown(app: web.Application) -> None:
        await registry.close()
        await span.close()
        if uploader:
            await uploader.close()  # what is left is delivered by the next start
        await portal.flush()
        await portal.close()

    app = web.Application()
    app["registry"] = registry
    app.router.add_get("/ws", Signalling(registry).handle)
    app.router.add_get("/status", status)
    app.router.add_get("/span", span.handle)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT, then shut down once: repeated signals (the supervisor's, the
    process group's, the parent-death signal) must not cut the goodbye short."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--ports", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = McuSettings.from_env()
    ports = [int(p) for p in args.ports.split(",") if p]
    secret = sys.stdin.readline().strip() if ports else ""
    asyncio.run(serve(make_app(settings, args.index, ports, secret), "127.0.0.1", args.port))


if __name__ == "__main__":
    main()
